"""One task per fold and target. A retry helps with transient device or file errors."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from numerflow.config.models import LightGBMParams
from numerflow.folds import Fold
from numerflow.training import FoldResult, PreparedData
from numerflow.training import train_fold as train_fold_logic


@task(
    name="train-fold",
    task_run_name="train-{target}-fold-{fold.index}",
    retries=1,
    retry_delay_seconds=5,
)
def train_fold(
    prepared: PreparedData,
    fold: Fold,
    target: str,
    params: LightGBMParams,
    seed: int,
    models_dir: Path,
) -> FoldResult:
    result = train_fold_logic(prepared, fold, target, params, seed, models_dir)
    get_run_logger().info(
        "%s fold %d: %d training rows, %d out-of-fold rows, %.1f s on %s",
        target,
        fold.index,
        result.train_rows,
        result.validation_rows,
        result.seconds,
        result.device_type,
    )
    return result
