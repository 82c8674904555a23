"""The submissions table (the `numerflow-submissions` artifact): one row per model, no blanks."""

from __future__ import annotations

from numerflow.submit.steps import SubmissionOutcome

NO_MODELS = "(no models in training.yaml models)"


def round_label(round_number: int | None) -> str:
    return f"round {round_number}" if round_number is not None else "no round (local live file)"


def submission_table(outcome: SubmissionOutcome) -> tuple[list[dict[str, str]], str]:
    """(rows, description) for the outcome of a submission subflow."""
    where = round_label(outcome.round)
    record = outcome.submission
    common = {
        "round": str(outcome.round) if outcome.round is not None else "local",
        "trained_run": outcome.trained_run_id or "-",
        "file": str(record.path) if record else "-",
        "sha256": record.sha256[:16] if record else "-",
    }
    rows = [
        {"model": u.model, "status": u.status, "submission_id": u.submission_id or "-", **common,
         "detail": u.detail or "-"}
        for u in outcome.uploads
    ] or [{"model": NO_MODELS, "status": outcome.status, "submission_id": "-", **common,
           "detail": outcome.message or "file written and validated, nothing uploaded"}]  # fmt: skip
    verb = {"dry-run": "dry run", "no-open-round": "no open round"}.get(outcome.status, "uploads")
    return rows, f"{verb} for {where}"
