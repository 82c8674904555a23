"""The weekly training flow: data -> era-aware folds -> stacking -> scores -> submission.

    download data if changed -> probe GPU, choose tier -> prepare data (bins built once)
    -> train each fold x target -> stack and score per era -> manifest
    -> submission subflow (live data, predictions, validated file, uploads) -> artifacts

Configuration is read and validated first, so a bad file or override fails before any work.
Fold tasks run in a subflow on the task runner the config picks: one at a time locally (LightGBM
already uses every core), or fanned out to an existing Dask cluster (`flows/folds.py`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic import BaseModel

from flows.expected import fails_cleanly
from flows.folds import check_cluster, fold_flow
from flows.hooks import alert_owner
from flows.naming import rename_run
from flows.submission import SubmissionOutcome, connect, submission_flow, upload_failure_state
from numerflow.config import load_config
from numerflow.config.parameters import (
    DaskAddress,
    DataVersion,
    EmbargoEras,
    EraStride,
    FeatureSet,
    LearningRate,
    MaxFeatures,
    Models,
    NEstimators,
    NFolds,
    Targets,
    overrides_from,
)
from numerflow.gpu.tiers import apply_data_limits
from numerflow.runs.manifest import utc_now
from numerflow.runs.names import weekly_run_name
from numerflow.runs.steps import device_record, plan_folds, start_run, write_run_manifest
from numerflow.score.evaluate import STACK
from numerflow.submit.steps import resolve_version
from tasks.data import prepare_training_data
from tasks.evaluation import publish_metrics, stack_and_score
from tasks.gpu import choose_tier, probe_gpu
from tasks.numerai import download_training_data


class WeeklyResult(BaseModel):
    run_id: str
    run_dir: Path
    submission: SubmissionOutcome
    validation_corr_mean: float
    validation_corr_sharpe: float
    summary: dict[str, dict[str, dict[str, float | int]]]


def _run_name(version: str | None = None) -> str:
    """weekly-<date>-<version>-<short id>: the configured version at first, the resolved one
    (`latest` -> v5.2) as soon as it is known."""
    return weekly_run_name(flow_run.scheduled_start_time, version or _configured_version(), flow_run.get_id())


def _configured_version() -> str:
    parameters = flow_run.parameters
    try:
        config = load_config(
            parameters.get("config_dir"), overrides_from(parameters, parameters.get("overrides"))
        )
    except Exception:  # a bad config fails the run right after, with the real message
        return parameters.get("data_version") or "config"
    return config.training.data.version


@flow(
    name="numerflow-weekly",
    flow_run_name=_run_name,
    on_failure=[alert_owner],
    on_crashed=[alert_owner],
)
@fails_cleanly
def weekly_flow(
    n_folds: NFolds = None,
    embargo_eras: EmbargoEras = None,
    era_stride: EraStride = None,
    data_version: DataVersion = None,
    feature_set: FeatureSet = None,
    max_features: MaxFeatures = None,
    targets: Targets = None,
    n_estimators: NEstimators = None,
    learning_rate: LearningRate = None,
    models: Models = None,
    dask_address: DaskAddress = None,
    dry_run: bool = False,
    overrides: dict[str, Any] | None = None,
    config_dir: str | None = None,
) -> WeeklyResult:
    """Train, score and submit with config/ plus these overrides.

    Args:
        n_folds: era-grouped folds (training.yaml folds.n_folds)
        embargo_eras: eras dropped next to each validation block
        era_stride: train on every Nth era
        data_version: Numerai data version, e.g. v5.2, or latest
        feature_set: feature set from features.json (small, medium, all, ...)
        max_features: keep only the first N features of the set
        targets: targets to train, the main one first
        n_estimators: LightGBM trees per model
        learning_rate: LightGBM learning rate
        models: Numerai model names to submit as
        dask_address: train the folds on this Dask cluster (tcp://host:8786) instead of here
        dry_run: write and validate the submission but do not upload
        overrides: any other config key, as {"FILE.KEY": value}
        config_dir: folder with the YAML config files (default: ./config)
    """
    started = time.monotonic()
    logger = get_run_logger()
    overrides = overrides_from(dict(locals()), overrides)
    config = load_config(config_dir, overrides)
    workers = check_cluster(config.training.scale_out)
    if workers is not None:
        logger.info(
            "training on the Dask cluster at %s (%d workers)", config.training.scale_out.dask_address, workers
        )
    created_at = utc_now()

    client = connect(config)[0] if config.training.numerai.download else None
    config = resolve_version(config, client)
    rename_run(_run_name(config.training.data.version))
    if client is not None:
        download_training_data(config, client)

    probe = probe_gpu()
    decision = choose_tier(config, probe)
    config = apply_data_limits(config, decision)
    params = decision.params

    paths = start_run(config, params, decision)
    prepared = prepare_training_data(config, params, paths)
    folds = plan_folds(config, prepared)
    train_folds = fold_flow(config.training.scale_out)
    results = train_folds(config, prepared, folds, decision.ladder, paths.models_dir, paths.fold_cache_dir)

    evaluation = stack_and_score(config, prepared, results, paths)
    device = device_record(decision, probe, results)
    write_run_manifest(config, params, device, paths, prepared, folds, results, evaluation, created_at)
    outcome = submission_flow(config, paths.run_dir, dry_run=not config.training.numerai.upload)
    seconds = time.monotonic() - started
    publish_metrics(paths, config.training.data.version, evaluation, outcome, overrides, device, seconds)

    failure = upload_failure_state(outcome)
    if failure is not None:
        return failure  # the model files and manifest stay; the upload alert goes out
    validation = evaluation.summary["validation"][STACK]
    logger.info(
        "run %s: validation CORR %.4f (sharpe %.2f)", paths.run_id, validation["mean"], validation["sharpe"]
    )
    return WeeklyResult(
        run_id=paths.run_id,
        run_dir=paths.run_dir,
        submission=outcome,
        validation_corr_mean=validation["mean"],
        validation_corr_sharpe=validation["sharpe"],
        summary=evaluation.summary,
    )
