"""The submissions table (the `numerflow-submissions` artifact): one row per model slot (and per
upload), no blanks."""

from __future__ import annotations

from numerflow.numerai.uploads import UploadOutcome
from numerflow.submit.outcome import SlotSubmission, SubmissionOutcome

NO_MODELS = "(no models in training.yaml models)"
NO_SUBMIT_AS = "(not submitted: no submit_as)"


def round_label(round_number: int | None) -> str:
    return f"round {round_number}" if round_number is not None else "no round (local live file)"


def submission_table(outcome: SubmissionOutcome) -> tuple[list[dict[str, str]], str]:
    """(rows, description) for the outcome of a submission subflow."""
    where = round_label(outcome.round)
    round_text = str(outcome.round) if outcome.round is not None else "local"
    uploads = list(outcome.uploads)
    rows = []
    for entry in outcome.slots:
        mine = [u for u in uploads if entry.submit_as is not None and u.model == entry.submit_as]
        for upload in mine:
            uploads.remove(upload)
        rows += [_row(round_text, entry, u, outcome.status) for u in mine] or [
            _row(round_text, entry, None, outcome.status)
        ]
    rows += [_row(round_text, None, u, outcome.status) for u in uploads]  # an upload of no slot
    if not rows:
        rows = [
            {"slot": "-", "model": NO_MODELS, "status": outcome.status, "submission_id": "-",
             "round": round_text, "trained_run": "-", "file": "-", "sha256": "-",
             "detail": outcome.message or "file written and validated, nothing uploaded"}
        ]  # fmt: skip
    verb = {"dry-run": "dry run", "no-open-round": "no open round"}.get(outcome.status, "uploads")
    return rows, f"{verb} for {where}"


def _row(
    round_text: str, entry: SlotSubmission | None, upload: UploadOutcome | None, status: str
) -> dict[str, str]:
    record = entry.submission if entry else None
    if upload is not None:
        row_status, detail = upload.status, upload.detail
    elif entry is not None and entry.error is not None:
        row_status, detail = "failed", entry.error
    else:
        row_status = "dry-run" if status == "dry-run" else "written"
        detail = "file written and validated, nothing uploaded"
    return {
        "slot": entry.slot if entry else "-",
        "model": (upload.model if upload else None) or (entry.submit_as if entry else None) or NO_SUBMIT_AS,
        "status": row_status,
        "submission_id": (upload.submission_id if upload else None) or "-",
        "round": round_text,
        "trained_run": (entry.trained_run_id if entry else None) or "-",
        "file": str(record.path) if record else "-",
        "sha256": record.sha256[:16] if record else "-",
        "detail": detail or "-",
    }
