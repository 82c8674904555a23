"""Flow run names: unique, and saying what the run does, from the moment it exists.

    weekly-<date>-<data version>-<short id>     e.g. weekly-2026-11-29-v5.2-1a2b3c4d
    round-<round>-<models>[-dry-run]           e.g. round-1002-alpha-beta
    <parent name>-<role>                       a subflow, e.g. weekly-...-1a2b3c4d-submission

The short id (the run id's first 8 characters) keeps a failed and a completed run of one day
apart, so an alert's subject names the run it is about.
"""

from __future__ import annotations

from datetime import date

SHORT_ID_LENGTH = 8


def short_id(run_id: object) -> str:
    return str(run_id).replace("-", "")[:SHORT_ID_LENGTH]


def weekly_run_name(day: date, data_version: str, run_id: object) -> str:
    return f"weekly-{day:%Y-%m-%d}-{data_version}-{short_id(run_id)}"


def round_run_name(round_number: int | None, models: list[str], uploading: bool) -> str:
    subject = "-".join(models) if models else "no-models"
    return f"round-{round_number or 'local'}-{subject}" + ("" if uploading else "-dry-run")


def round_placeholder_name(run_id: object) -> str:
    """The per-round run's name until the open round is known."""
    return f"round-pending-{short_id(run_id)}"


def child_run_name(parent_name: str | None, role: str) -> str:
    return f"{parent_name}-{role}" if parent_name else role
