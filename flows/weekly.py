"""The weekly training flow: one resolved plan -> shared data and fold models -> each model
slot's stack, scores and submission.

    download data if changed -> probe GPU, choose tier -> resolve the run plan (every slot)
    -> check each feature set's final model fits (all labelled eras) -> prepare data once per
    feature set (bins built once) -> train each fold x target once, however many slots share it
    -> per slot: stack and score -> final models (train + validation eras, binned once) -> per
    slot: manifest -> submission subflow
    (live data, each slot's predictions, validated files, one upload per model) -> artifacts
    -> retention (training.retention: old run folders and live files)

Configuration is read and validated first, so a bad file or override fails before any work;
everything after the plan reads the plan, never the config (retention, at the very end, reads
training.retention). A slot that fails does not stop the others: the run finishes them, then
ends Failed naming the slots that failed.
Fold tasks run in a subflow on the task runner the plan picks: one at a time locally (LightGBM
already uses every core), or fanned out to an existing Dask cluster (`flows/folds.py`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed
from pydantic import BaseModel

from flows.expected import fails_cleanly
from flows.folds import check_cluster, fold_flow
from flows.hooks import alert_owner, heartbeat_fail, heartbeat_start, heartbeat_success
from flows.naming import rename_run
from flows.submission import connect, submission_flow, upload_failure_state
from numerflow.config import load_config
from numerflow.config.models import TrainingConfig
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
from numerflow.runs.final import FinalData, FinalModels
from numerflow.runs.manifest import utc_now
from numerflow.runs.names import weekly_run_name
from numerflow.runs.plan import RunPlan, SlotPlan, submit_plan_after_training
from numerflow.runs.record import device_record, write_slot_manifest
from numerflow.runs.retention import apply_prune, plan_prune
from numerflow.runs.steps import RunPaths, data_groups, plan_fits, start_run
from numerflow.score.results import STACK, Evaluation, MetricScores, SplitScores
from numerflow.submit.steps import SubmissionOutcome, resolve_version
from numerflow.train.fit import FoldResult
from tasks.data import prepare_training_data
from tasks.evaluation import publish_metrics, stack_and_score
from tasks.gpu import choose_tier, probe_gpu
from tasks.numerai import download_training_data
from tasks.plan import publish_run_plan, resolve_run_plan
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
    started = time.monotonic()
    logger = get_run_logger()
    overrides = overrides_from(dict(locals()), overrides)
    config = load_config(config_dir, overrides)
    heartbeat_start("weekly", config)
    workers = check_cluster(config.training.scale_out)
    if workers is not None:
        logger.info(
            "training on the Dask cluster at %s (%d workers)", config.training.scale_out.dask_address, workers
        )
    created_at = utc_now()

    client = connect(config.training.numerai)[0] if config.training.numerai.download else None
    version = resolve_version(config.training.data, client)
    rename_run(_run_name(version))
    if client is not None:
        download_training_data(config.training.data.dir / version, client)
    probe = probe_gpu()
    decision = choose_tier(config, probe, version, models)
    plan = resolve_run_plan(config, version, decision, overrides, models)
    publish_run_plan(plan)
    paths = start_run(plan)

    groups = data_groups(plan)
    # Checked before anything is binned: a final model that cannot fit stops the run now.
    finals = (
        {key: check_final_model(plan, slots, probe) for key, slots in groups.items()}
        if plan.final_model == "all_labelled"
        else {}
    )
    prepared = {key: prepare_training_data(plan, slots, paths) for key, slots in groups.items()}
    fits, fits_by_slot = plan_fits(plan, prepared, paths)
    train_folds = fold_flow(plan.scale_out)
    results = train_folds(fits, prepared, plan.scale_out, plan.seed, paths.fold_cache_dir, plan.device_policy)
    device = device_record(plan, probe, [r for r in results.values() if isinstance(r, FoldResult)])

    scored: dict[str, tuple[list[FoldResult], Evaluation]] = {}
    failed: dict[str, str] = {}
    for slot in plan.slots:
        slot_results = [results[key] for key in fits_by_slot[slot.name]]
        errors = [r for r in slot_results if isinstance(r, str)]
        if errors:
            failed[slot.name] = f"{len(errors)} fold model(s) failed: {errors[0]}"
            continue
        try:
            data = prepared[slot.data_key()]
            scored[slot.name] = slot_results, stack_and_score(slot, plan.data, data, slot_results, paths)
        except Exception as exc:  # one slot's failure must not stop the others
            failed[slot.name] = f"{type(exc).__name__}: {exc}"
    final_models = _train_final_models(plan, finals, groups, set(scored), paths, failed)
    evaluations: dict[str, Evaluation] = {}
    for name, (slot_results, evaluation) in scored.items():
        if name in failed:
            continue
        slot = plan.slot(name)
        try:  # the manifest makes the slot's models the ones `numerflow submit` predicts with
            write_slot_manifest(
                plan, slot, device, paths, prepared[slot.data_key()], slot_results, evaluation, created_at,
                final_models.get(name),
            )  # fmt: skip
            evaluations[name] = evaluation
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
    for name, reason in failed.items():
        logger.error("slot %s failed: %s", name, reason)

    outcome = None
    if evaluations:
        trained = {name: paths.slot_dir(name) for name in evaluations}
        submit_plan = submit_plan_after_training(plan, trained)
        outcome = submission_flow(submit_plan, dry_run=not plan.numerai.upload)
    seconds = time.monotonic() - started
    publish_metrics(
        paths, plan.data.version, evaluations, failed, outcome, overrides, device, seconds, plan.history_runs
    )
    prune_after_run(config.training)

    failure = upload_failure_state(outcome) if outcome is not None else None  # sends upload alerts
    if failed:  # a separate incident from any upload given up: the failed-run alert names the slots
        reasons = "; ".join(f"{name}: {reason}" for name, reason in failed.items())
        also = f" (and {failure.message})" if failure is not None else ""
        return Failed(message=f"run {paths.run_id}: model slot(s) failed: {reasons}{also}")
    if failure is not None:
        return failure  # the model files and manifests stay; the upload alert goes out
    for name, evaluation in evaluations.items():
        figures = evaluation.summary.validation[STACK]
        logger.info("slot %s: validation CORR %.4f (sharpe %.2f)", name, figures.mean, figures.sharpe)
    return WeeklyResult(
        run_id=paths.run_id,
        run_dir=paths.run_dir,
        submission=outcome,
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


def prune_after_run(training: TrainingConfig) -> None:
    """training.retention, applied once the run is recorded; a failure here is logged, never the run's."""
    logger = get_run_logger()
    try:
        removed = apply_prune(plan_prune(training))
    except Exception as exc:
        logger.warning("retention: could not prune (%s: %s); `numerflow prune --dry-run` shows what is due",
                       type(exc).__name__, exc)  # fmt: skip
        return
    if removed:
        freed = sum(r.bytes for r in removed) / 2**20
        logger.info("retention: removed %d old item(s), %.1f MiB freed", len(removed), freed)


def _train_final_models(
    plan: RunPlan,
    finals: dict[str, FinalData],
    groups: dict[str, list[SlotPlan]],
    scored: set[str],
    paths: RunPaths,
    failed: dict[str, str],
) -> dict[str, FinalModels]:
    """After validation: each data group's final models, for its slots that scored. A group whose
    final step fails fails its slots (named in `failed`); the other groups go on."""
    trained: dict[str, FinalModels] = {}
    for key, final in finals.items():
        slots = [slot for slot in groups[key] if slot.name in scored]
        if not slots:
            continue
        try:
            trained |= train_final_models_task(plan, final, slots, paths)
        except Exception as exc:  # one group's failure must not stop the others
            for slot in slots:
                failed[slot.name] = f"final model: {type(exc).__name__}: {exc}"
    return trained
