"""Live prediction, submission file and upload record as tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task

from numerflow.config.models import NumerflowConfig
from numerflow.pipeline import (
    LivePredictions,
    RunPaths,
    SubmissionRecord,
    make_submission,
    predict_live,
    record_dry_run_upload,
)
from numerflow.stacking import Stacker


@task(name="predict-live")
def predict_live_task(
    config: NumerflowConfig,
    feature_names: list[str],
    models: dict[str, list[Path]],
    stacker: Stacker,
    live_path: Path,
    paths: RunPaths,
) -> LivePredictions:
    return predict_live(config, feature_names, models, stacker, live_path, paths)


@task(name="write-submission")
def write_submission_task(live: LivePredictions, target_path: Path) -> SubmissionRecord:
    record = make_submission(live, target_path)
    get_run_logger().info("submission %s: %d rows, validated", record.path, record.rows)
    return record


@task(name="upload-dry-run")
def dry_run_upload(config: NumerflowConfig, submission: SubmissionRecord, paths: RunPaths) -> dict[str, Any]:
    record = record_dry_run_upload(config, submission, paths)
    models = ", ".join(config.training.models) or "no models configured"
    get_run_logger().info("dry run: would upload %s for %s", submission.path, models)
    return record
