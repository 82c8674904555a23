"""The `numerflow status` section of the model_upload slots: each slot's pickle on Numerai (which
trained run, uploaded when) and the last round Numerai ran it for, from numerflow's own records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from numerflow.config.models import NumerflowConfig
from numerflow.hosted.watch import hosted_runs
from numerflow.numerai import ledger
from numerflow.runs.plan import select_slots


def hosted_status(config: NumerflowConfig) -> dict[str, dict[str, Any]] | None:
    """`{slot: {pickle_run, uploaded_at, round, status}}` for the model_upload slots; None: there are none."""
    work_dir: Path = config.training.work_dir
    slots = [s.name for s in select_slots(config) if s.submit_via == "model_upload"]
    if not slots:
        return None
    uploads, runs = ledger.model_uploads(work_dir), hosted_runs(work_dir)
    found = {}
    for name in slots:
        upload = next((u for u in reversed(uploads) if u.model == name), None)
        run = next((r for r in reversed(runs) if r.model == name), None)
        found[name] = {
            "pickle_run": upload.trained_run_id if upload else None,
            "uploaded_at": upload.recorded_at if upload else None,
            "round": run.round if run else None,
            "status": (run.status or "no run") if run else None,
        }
    return found


def hosted_lines(hosted: dict[str, dict[str, Any]] | None) -> list[str]:
    if not hosted:
        return []
    lines = ["hosted (model uploads):"]
    for slot, entry in hosted.items():
        pickle = (
            f"pickle of run {entry['pickle_run']} uploaded {entry['uploaded_at']}"
            if entry["pickle_run"]
            else "no pickle uploaded yet"
        )
        ran = (
            f"Numerai's last run: round {entry['round']}, {entry['status']}"
            if entry["round"] is not None
            else "no round read yet"
        )
        lines.append(f"  {slot:<24}{pickle}; {ran}")
    return lines
