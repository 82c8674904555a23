"""One task per fold and target. GPU errors step down the tier ladder inside the task; a
task retry then helps with anything else transient (files, devices, a lost Dask worker)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from prefect import get_run_logger, task

from numerflow.config.models import NumerflowConfig
from numerflow.gpu.probe import probe_gpus
from numerflow.gpu.shape import shape_for
from numerflow.gpu.tiers import TierStep, decision_for
from numerflow.train.fit import FoldResult, fit_fold_on_ladder
from numerflow.train.foldcache import FoldCache
from numerflow.train.folds import Fold
from numerflow.train.prepare import PreparedData, ensure_bins


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
    ladder: list[TierStep] | None,
    seed: int,
    models_dir: Path,
    cache_dir: Path | None = None,
    config: NumerflowConfig | None = None,
) -> FoldResult:
    """Train one fold x target; with no `ladder`, the tier is decided here, on the machine that trains."""
    logger = get_run_logger()
    where = f"{socket.gethostname()} pid {os.getpid()}"  # a Dask worker when scaled out
    if ensure_bins(prepared):
        logger.info("%s: bins were missing here; built them under key %s", where, prepared.bins.record.key)
    if ladder is None:
        if config is None:
            raise ValueError("train_fold needs a tier ladder or the config to decide one")
        # The bins are built: this worker's GPU takes them as they are, or the CPU does.
        binned = shape_for(config, prepared.rows, len(prepared.feature_names))
        decision = decision_for(config, probe_gpus(), shape=binned, can_reduce=False)
        ladder = decision.ladder
        logger.info("%s: tier %s (%s)", where, decision.tier, decision.reason)
    cache = FoldCache(cache_dir) if cache_dir is not None else None
    result = fit_fold_on_ladder(prepared, fold, target, ladder, seed, models_dir, cache)
    if result.reused:
        logger.info("%s fold %d: finished before with the same inputs; reused", target, fold.index)
        return result
    for step in result.downgrades:
        logger.warning(
            "%s fold %d: %s -> %s after %s", target, fold.index, step["from"], step["to"], step["error"]
        )
    logger.info(
        "%s fold %d: %d training rows, %d out-of-fold rows, %.1f s on %s (tier %s) in %s",
        target,
        fold.index,
        result.train_rows,
        result.validation_rows,
        result.seconds,
        result.device_type,
        result.tier,
        where,
    )
    return result
