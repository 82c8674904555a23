"""Data preparation as a task: read the needed columns once and bin them for every fold."""

from __future__ import annotations

from prefect import get_run_logger, task

from numerflow.config.models import LightGBMParams, NumerflowConfig
from numerflow.pipeline import RunPaths, prepare_data
from numerflow.training import PreparedData


@task(name="prepare-training-data")
def prepare_training_data(config: NumerflowConfig, params: LightGBMParams, paths: RunPaths) -> PreparedData:
    prepared = prepare_data(config, params, paths)
    get_run_logger().info(
        "training rows: %d over %d eras, %d features, targets %s",
        prepared.rows,
        len(prepared.eras),
        len(prepared.feature_names),
        prepared.targets,
    )
    return prepared
