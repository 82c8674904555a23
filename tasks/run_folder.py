"""The run folder's bookkeeping as tasks: create it with the plan, plan the fold fits, record the
device the run trained on, write each slot's manifest, and prune old runs after the run."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from numerflow.config.models import TrainingConfig
from numerflow.runs.fits import plan_fits
from numerflow.runs.folders import RunPaths, start_run
from numerflow.runs.manifest import DeviceRecord
from numerflow.runs.plan import RunPlan
from numerflow.runs.record import device_record, write_slot_manifest
from numerflow.runs.retention import apply_prune, plan_prune
from numerflow.train.fit import FoldResult
from tasks.inputs import DeviceInput, FitPlan, ManifestJob, RunData


@task(name="start-run-folder")
def start_run_folder(plan: RunPlan) -> RunPaths:
    """`<work_dir>/<run id>/` with the plan and the effective parameters, before any training."""
    paths = start_run(plan)
    get_run_logger().info("run folder %s", paths.run_dir)
    return paths


@task(name="plan-fold-fits")
def plan_fold_fits(data: RunData) -> FitPlan:
    """Every fold x target to train, each once however many slots share it."""
    fits, by_slot = plan_fits(data.run.plan, data.prepared, data.run.paths)
    get_run_logger().info("%d fold model(s) to train for %d slot(s)", len(fits), len(by_slot))
    return FitPlan(fits=fits, by_slot=by_slot)


@task(name="record-device")
def record_device(device: DeviceInput) -> DeviceRecord:
    """What the run trained on: the device decision, what NVML saw, every fold's step down."""
    results = [r for r in device.results.values() if isinstance(r, FoldResult)]
    return device_record(device.run.plan, device.run.probe, results)


@task(name="write-slot-manifest", task_run_name="write-manifest-{job.job.slot.name}")
def write_manifest(job: ManifestJob) -> Path:
    """The slot's chart and manifest; the manifest makes its models the ones `numerflow submit`
    predicts with."""
    slot = job.job
    return write_slot_manifest(
        slot.run.plan,
        slot.slot,
        job.device,
        slot.run.paths,
        slot.prepared,
        slot.results,
        job.evaluation,
        job.created_at,
        job.final,
    )


@task(name="prune-old-runs")
def prune_old_runs(training: TrainingConfig) -> None:
    """training.retention, applied once the run is recorded; a failure here is logged, never the run's."""
    logger = get_run_logger()
    try:
        removed = apply_prune(plan_prune(training))
    except Exception as exc:
        logger.warning(
            "retention: could not prune (%s: %s); `numerflow prune --dry-run` shows what is due",
            type(exc).__name__,
            exc,
        )
        return
    if removed:
        freed = sum(r.bytes for r in removed) / 2**20
        logger.info("retention: removed %d old item(s), %.1f MiB freed", len(removed), freed)
