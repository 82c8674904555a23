"""A submission file uploaded to each of its models, once per model and round."""

from __future__ import annotations

from pathlib import Path

from numerflow.numerai.client import NumeraiClient
from numerflow.numerai.uploads import UploadOutcome, UploadRequest, upload_once
from numerflow.submit.file import SubmissionRecord


def upload_for_models(
    work_dir: Path,
    client: NumeraiClient | None,
    model_ids: dict[str, str],
    submission: SubmissionRecord,
    round_number: int | None,
    trained_run_id: str,
    force: bool,
    dry_run: bool,
) -> list[UploadOutcome]:
    """One upload per model and round from a trained run (`numerflow.numerai.uploads`).

    Failures are returned, not raised, so one model's failure does not stop the others.
    """
    outcomes = []
    for model, model_id in model_ids.items():
        if dry_run or client is None or round_number is None:
            outcomes.append(
                UploadOutcome(model=model, status="dry-run", detail=f"would upload {submission.path}")
            )
            continue
        request = UploadRequest(
            round_number, model, model_id, trained_run_id, submission.path, submission.rows
        )
        outcomes.append(upload_once(client, work_dir, request, force))
    return outcomes
