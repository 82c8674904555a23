"""Data preparation as a task: fix the training rows and bin them once for a group of slots."""

from __future__ import annotations

from prefect import get_run_logger, task

from numerflow.data.memory import GIB
from numerflow.runs.fits import prepare_data
from numerflow.train.prepare import PreparedData
from tasks.inputs import DataGroup
from tasks.progress import on_terminal


@task(name="prepare-training-data", task_run_name="prepare-{group.slots[0].name}-data")
def prepare_training_data(group: DataGroup) -> PreparedData:
    names = ", ".join(group.slot_names)
    run = group.run
    prepared = prepare_data(run.plan, group.slots, run.paths, on_terminal(f"binning {names}", "rows"))
    logger = get_run_logger()
    logger.info(
        "training rows for %s: %d over %d eras, %d features, targets %s",
        names,
        prepared.rows,
        len(prepared.eras),
        len(prepared.feature_names),
        prepared.targets,
    )
    bins, memory = prepared.bins, prepared.bins.plan
    logger.info(
        "bins %s: %s (%s loader, %.1f s to build); memory: %.1f GiB free, estimated peaks %s",
        bins.record.key,
        "built by this run" if bins.built else "reused from the cache",
        bins.record.loader,
        bins.record.construct_seconds,
        memory.available_bytes / GIB,
        {k: f"{v / GIB:.1f} GiB" for k, v in memory.estimates_bytes.items()},
    )
    return prepared
