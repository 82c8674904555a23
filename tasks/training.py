"""One task per fold and target. GPU errors step down the tier ladder inside the task; a
task retry then helps with anything else transient (files, devices)."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from numerflow.foldcache import FoldCache
from numerflow.folds import Fold
from numerflow.tiers import TierStep
from numerflow.training import FoldResult, PreparedData, train_fold_on_ladder


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
    ladder: list[TierStep],
    seed: int,
    models_dir: Path,
    cache_dir: Path | None = None,
) -> FoldResult:
    cache = FoldCache(cache_dir) if cache_dir is not None else None
    result = train_fold_on_ladder(prepared, fold, target, ladder, seed, models_dir, cache)
    logger = get_run_logger()
    if result.reused:
        logger.info("%s fold %d: finished before with the same inputs; reused", target, fold.index)
        return result
    for step in result.downgrades:
        logger.warning(
            "%s fold %d: %s -> %s after %s", target, fold.index, step["from"], step["to"], step["error"]
        )
    logger.info(
        "%s fold %d: %d training rows, %d out-of-fold rows, %.1f s on %s (tier %s)",
        target,
        fold.index,
        result.train_rows,
        result.validation_rows,
        result.seconds,
        result.device_type,
        result.tier,
    )
    return result
