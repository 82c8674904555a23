"""Data preparation as a task: read the needed columns once and bin them for every fold."""

from __future__ import annotations

from prefect import get_run_logger, task

from numerflow.config.models import LightGBMParams, NumerflowConfig
from numerflow.data.memory import GIB
from numerflow.runs.steps import RunPaths, prepare_data
from numerflow.train.prepare import PreparedData


@task(name="prepare-training-data")
def prepare_training_data(config: NumerflowConfig, params: LightGBMParams, paths: RunPaths) -> PreparedData:
    prepared = prepare_data(config, params, paths)
    logger = get_run_logger()
    logger.info(
        "training rows: %d over %d eras, %d features, targets %s",
        prepared.rows,
        len(prepared.eras),
        len(prepared.feature_names),
        prepared.targets,
    )
    bins, plan = prepared.bins, prepared.bins.plan
    logger.info(
        "bins %s: %s (%s loader, %.1f s to build); memory: %.1f GiB free, estimated peaks %s",
        bins.record.key,
        "built by this run" if bins.built else "reused from the cache",
        bins.record.loader,
        bins.record.construct_seconds,
        plan.available_bytes / GIB,
        {k: f"{v / GIB:.1f} GiB" for k, v in plan.estimates_bytes.items()},
    )
    return prepared
