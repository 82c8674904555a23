"""The weekly training flow: one resolved plan -> shared data and fold models -> each model
slot's stack, scores and submission.

    download data if changed -> resolve the run plan (every slot) -> probe GPU, decide the
    device from the plan's training shape and apply it to the plan
    -> check each feature set's final model fits (all labelled eras) -> prepare data once per
    feature set (bins built once) -> train each fold x target once, however many slots share it
    -> per slot: stack and score -> final models (train + validation eras, binned once) -> per
    slot: manifest -> submission subflow
    (live data, each slot's predictions, validated files, one upload per model) -> artifacts
    -> retention (training.retention: old run folders and live files)

Configuration is read and validated first, so a bad file or override fails before any work;
everything after the plan reads the plan, never the config (retention, at the very end, reads
training.retention). Every step is a task or subflow, so the run's page in the UI shows each.
A slot that fails does not stop the others: its stage and reason go into the run's typed outcome
(`numerflow/runs/outcome.py`), the run finishes the others, then ends Failed naming it.
Fold tasks run in a subflow on the task runner the plan picks: one at a time locally (LightGBM
already uses every core), or fanned out to an existing Dask cluster (`flows/folds.py`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run
from prefect.states import Failed
from pydantic import BaseModel

from flows.expected import fails_cleanly
from flows.folds import check_cluster, fold_flow
from flows.hooks import alert_owner, heartbeat_fail, heartbeat_start, heartbeat_success
from flows.naming import rename_run
from flows.recipe import each_slot
from flows.submission import connect, submission_flow, upload_failure_state
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
from numerflow.runs.manifest import DeviceRecord, utc_now
from numerflow.runs.names import weekly_run_name
from numerflow.runs.outcome import RunOutcome
from numerflow.score.results import STACK, MetricScores, SplitScores
from numerflow.submit.outcome import SubmissionOutcome
from tasks.data import prepare_training_data
from tasks.evaluation import publish_metrics
from tasks.gpu import decide_device_task, probe_gpu
from tasks.inputs import DeviceInput, RunData, WeeklyRun
from tasks.numerai import download_training_data, resolve_data_version
from tasks.plan import publish_run_plan, resolve_run_plan
from tasks.run_folder import plan_fold_fits, prune_old_runs, record_device, start_run_folder, write_manifest
from tasks.scoring import stack_and_score
from tasks.training import check_final_model, train_final_models_task


class SlotResult(BaseModel):
    validation_corr_mean: float
    validation_corr_sharpe: float
    validation_eras: int
    summary: SplitScores
    validation_metrics: dict[str, MetricScores]  # summaries only; the per-era rows are in the artifacts


class WeeklyResult(BaseModel):
    run_id: str
    run_dir: Path
    submission: SubmissionOutcome | None
    slots: dict[str, SlotResult]


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
    on_completion=[heartbeat_success],
    on_failure=[alert_owner, heartbeat_fail],
    on_crashed=[alert_owner, heartbeat_fail],
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
        models: model slots to run (default: all in training.yaml); a name not configured there
            is a slot with the default recipe
        dask_address: train the folds on this Dask cluster (tcp://host:8786) instead of here
        dry_run: write and validate the submission but do not upload
        overrides: any other config key, as {"FILE.KEY": value}
        config_dir: folder with the YAML config files (default: ./config)
    """
    overrides = overrides_from(dict(locals()), overrides)
    started, created_at = time.monotonic(), utc_now()
    config = load_config(config_dir, overrides)
    heartbeat_start("weekly", config)
    check_cluster(config.training.scale_out)
    client = connect(config.training.numerai)[0] if config.training.numerai.download else None
    version = resolve_data_version(config.training.data, client)
    rename_run(_run_name(version))
    if client is not None:
        download_training_data(config.training.data.dir / version, client)
    probe = probe_gpu()
    plan = decide_device_task(resolve_run_plan(config, version, overrides, models), probe)
    publish_run_plan(plan)
    run = WeeklyRun(plan=plan, paths=start_run_folder(plan), probe=probe)
    # Checked before anything is binned: a final model that cannot fit stops the run now.
    finals = {g.key: check_final_model(g) for g in run.groups() if plan.final_model == "all_labelled"}
    prepared = {g.key: prepare_training_data(g) for g in run.groups()}
    data = RunData(run=run, prepared=prepared, finals=finals)
    fits = plan_fold_fits(data)
    results = fold_flow(plan.scale_out)(data.fold_jobs(fits))
    device = record_device(DeviceInput(run=run, results=results))
    outcome = RunOutcome.after_folds(run.paths.run_id, fits.by_slot, results)
    outcome = outcome.after("score", each_slot(stack_and_score, data.slot_jobs(outcome)))
    outcome = outcome.after("final model", each_slot(train_final_models_task, data.final_jobs(outcome)))
    jobs = data.manifest_jobs(outcome, device, created_at)
    outcome = outcome.after("manifest", each_slot(write_manifest, jobs))
    to_submit = run.submit_plan(outcome)  # the slots that trained, with their run folders
    submitted = submission_flow(to_submit, dry_run=not plan.numerai.upload) if to_submit else None
    record = RunRecord(run=run, outcome=outcome, submission=submitted, overrides=overrides, device=device)
    publish_run(record, seconds=time.monotonic() - started)
    prune_old_runs(config.training)
    return final_state(record)


class RunRecord(BaseModel):
    """What the weekly run did: the artifacts and the final state are made from it."""

    run: WeeklyRun
    outcome: RunOutcome
    submission: SubmissionOutcome | None
    overrides: dict[str, Any]
    device: DeviceRecord


def publish_run(record: RunRecord, seconds: float) -> None:
    """Each failed slot in the log, and the run's artifacts on the weekly run itself (made in the
    flow, not a task, so they belong to the flow run)."""
    logger = get_run_logger()
    for name, reason in record.outcome.failures().items():
        logger.error("slot %s failed: %s", name, reason)
    plan, paths = record.run.plan, record.run.paths
    publish_metrics(
        paths,
        plan.data.version,
        record.outcome.evaluations(),
        record.outcome.failures(),
        record.submission,
        record.overrides,
        record.device,
        seconds,
        plan.history_runs,
    )


def final_state(record: RunRecord) -> WeeklyResult | State:
    """Failed naming the failed slots (and any uploads given up), Failed UploadGivenUp when only
    uploads were given up (their alerts go out here), else the run's result."""
    submission, outcome = record.submission, record.outcome
    failure = upload_failure_state(submission) if submission is not None else None  # sends upload alerts
    slots_failed = outcome.failure_message(failure.message if failure is not None else None)
    if slots_failed is not None:  # a separate incident from any upload given up: the alert names the slots
        return Failed(message=slots_failed)
    if failure is not None:
        return failure  # the model files and manifests stay; the upload alert goes out
    logger = get_run_logger()
    evaluations = outcome.evaluations()
    for name, evaluation in evaluations.items():
        figures = evaluation.summary.validation[STACK]
        logger.info("slot %s: validation CORR %.4f (sharpe %.2f)", name, figures.mean, figures.sharpe)
    return WeeklyResult(
        run_id=record.run.paths.run_id,
        run_dir=record.run.paths.run_dir,
        submission=submission,
        slots={
            name: SlotResult(
                validation_corr_mean=e.summary.validation[STACK].mean,
                validation_corr_sharpe=e.summary.validation[STACK].sharpe,
                validation_eras=e.summary.validation[STACK].eras,
                summary=e.summary,
                validation_metrics={
                    k: m.model_copy(update={"per_era": []}) for k, m in e.validation_metrics.items()
                },
            )
            for name, e in evaluations.items()
        },
    )
