"""The submission subflow: live predictions -> validated submission file -> upload record.

The weekly flow ends with it; the per-round submission flow (Numerai I/O) will reuse it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow
from pydantic import BaseModel

from numerflow.config.models import NumerflowConfig
from numerflow.pipeline import RunPaths, SubmissionRecord
from numerflow.stacking import Stacker
from tasks.submission import dry_run_upload, predict_live_task, write_submission_task


class SubmissionOutcome(BaseModel):
    submission: SubmissionRecord
    upload: dict[str, Any]


@flow(name="numerflow-submission", flow_run_name="submit-{paths.run_id}")
def submission_flow(
    config: NumerflowConfig,
    feature_names: list[str],
    models: dict[str, list[Path]],
    stacker: Stacker,
    live_path: Path,
    paths: RunPaths,
) -> SubmissionOutcome:
    live = predict_live_task(config, feature_names, models, stacker, live_path, paths)
    submission = write_submission_task(live, config.training.submission.path)
    upload = dry_run_upload(config, submission, paths)
    return SubmissionOutcome(submission=submission, upload=upload)
