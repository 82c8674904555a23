"""One task per fold and target. GPU errors step down the fallback ladder inside the task; a
task retry then helps with anything else transient (files, devices, a lost Dask worker).
The final models (all labelled eras) are checked before the folds and trained after them."""

from __future__ import annotations

import os
import socket

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from numerflow.data.memory import GIB
from numerflow.gpu.probe import probe_gpus
from numerflow.progress import ProgressReport, Throttled, fan_out, percent
from numerflow.runs.device import worker_ladder
from numerflow.runs.final import FinalData, FinalModels, check_final_data, train_final_models
from numerflow.runs.fits import recipe_key
from numerflow.train.fit import FoldResult, fit_fold_on_ladder
from numerflow.train.foldcache import FoldCache
from numerflow.train.prepare import ensure_bins
from tasks.inputs import DataGroup, FinalJob, FoldJob
from tasks.progress import ARTIFACT_INTERVAL_S, on_terminal


def fold_progress(label: str) -> ProgressReport:
    """A progress artifact on this task run (moved a few times a minute) and a bar on the
    terminal, if the CLI shows one: the function that moves both (trees done/total)."""
    artifact_id = create_progress_artifact(0.0, description=f"{label}: training")

    def update_artifact(done: int, total: int) -> None:
        update_progress_artifact(
            artifact_id, percent(done, total), description=f"{label}: {done}/{total} trees"
        )

    return fan_out(
        Throttled(update_artifact, ARTIFACT_INTERVAL_S), on_terminal(label, "trees", transient=True)
    )


@task(
    name="train-fold",
    task_run_name="train-{job.fit.target}-fold-{job.fit.fold.index}",
    retries=1,
    retry_delay_seconds=5,
)
def train_fold(job: FoldJob) -> FoldResult:
    """Train one fold x target; with a `worker_policy`, the device is decided here, on the machine
    that trains (a Dask worker), for its own GPU."""
    prepared, fit, seed, cache_dir, worker_policy = (
        job.prepared,
        job.fit,
        job.seed,
        job.cache_dir,
        job.worker_policy,
    )
    logger = get_run_logger()
    where = f"{socket.gethostname()} pid {os.getpid()}"  # a Dask worker when scaled out
    if ensure_bins(prepared):
        logger.info("%s: bins were missing here; built them under key %s", where, prepared.bins.record.key)
    ladder = fit.ladder
    if worker_policy is not None:
        ladder, decision = worker_ladder(worker_policy, probe_gpus(), prepared, fit)
        logger.info("%s: device %s (%s)", where, decision.choice, decision.reason)
    cache = FoldCache(cache_dir) if cache_dir is not None else None
    target, fold = fit.target, fit.fold
    progress = fold_progress(f"{target} fold {fold.index}")
    result = fit_fold_on_ladder(prepared, fold, target, ladder, seed, fit.models_dir, cache, progress)
    if result.reused:
        progress(1, 1)
        logger.info("%s fold %d: finished before with the same inputs; reused", target, fold.index)
        return result
    for step in result.downgrades:
        logger.warning(
            "%s fold %d: %s -> %s after %s", target, fold.index, step["from"], step["to"], step["error"]
        )
    logger.info(
        "%s fold %d: %d training rows, %d out-of-fold rows, %.1f s on %s (step %s) in %s",
        target,
        fold.index,
        result.train_rows,
        result.validation_rows,
        result.seconds,
        result.device_type,
        result.step,
        where,
    )
    return result


@task(name="check-final-model", task_run_name="check-final-model-{group.slots[0].name}")
def check_final_model(group: DataGroup) -> FinalData:
    """Before any fold trains: the final model's rows fit this machine (or the run stops here,
    naming the settings), and where it will train."""
    slots, probe = group.slots, group.run.probe
    final = check_final_data(group.run.plan, slots, probe)
    logger = get_run_logger()
    memory = final.memory
    logger.info(
        "final model for %s: %s rows (%s) x %d features; %s loader, estimated peaks %s, %.1f GiB free",
        ", ".join(s.name for s in slots),
        f"{final.shape.rows:,}",
        ", ".join(f"{name} {rows:,}" for name, rows in final.part_rows.items()),
        final.shape.features,
        memory.loader,
        {k: f"{v / GIB:.1f} GiB" for k, v in memory.estimates_bytes.items()},
        memory.available_bytes / GIB,
    )
    log = logger.warning if final.decision.choice == "cpu" and probe.has_gpu else logger.info
    log("final model: device %s (%s)", final.decision.choice, final.decision.reason)
    return final


@task(name="train-final-models", task_run_name="train-final-models-{job.group.slots[0].name}")
def train_final_models_task(job: FinalJob) -> dict[str, FinalModels]:
    """Bin the final rows once and train each recipe's targets on them (after validation): each
    of the group's slots' final models."""
    logger = get_run_logger()
    final, slots = job.final, job.group.slots
    plan, paths = job.group.run.plan, job.group.run.paths
    finals = train_final_models(
        plan,
        final,
        slots,
        paths.prepared_dir(final.data_key) / "final",
        paths.models_dir,
        lambda slot: recipe_key(plan, slot),
        fold_progress,
        on_terminal(f"binning final {', '.join(s.name for s in slots)}", "rows"),
    )
    for result in {r.model_path: r for f in finals.values() for r in f.results}.values():
        for step in result.downgrades:
            logger.warning(
                "final %s: %s -> %s after %s", result.target, step["from"], step["to"], step["error"]
            )
        logger.info(
            "final %s: %d rows, %.1f s on %s (step %s)",
            result.target,
            result.rows,
            result.seconds,
            result.device_type,
            result.step,
        )
    return finals
