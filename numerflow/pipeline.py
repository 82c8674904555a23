"""The weekly run's steps as plain functions: Prefect tasks wrap these, tests call them directly.

Each step takes the validated config and paths and returns a small pydantic record, so the
orchestration layer only moves records and paths around.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from numerflow.binned import BinsCache
from numerflow.config.models import LightGBMParams, NumerflowConfig
from numerflow.data import read_features_json, select_features, to_era_numbers, training_eras, validation_eras
from numerflow.foldcache import CACHE_DIR_NAME, FoldCache
from numerflow.folds import Fold, make_folds
from numerflow.gpu import GpuProbe
from numerflow.io import atomic_path, write_yaml_atomic
from numerflow.metrics import per_era_corr, summarize, summarize_all
from numerflow.rows import FeatureRows, SelectedRows
from numerflow.runs import Manifest, code_version, mark_latest, new_run_id, utc_now, write_manifest
from numerflow.stacking import Stacker, cross_fitted, era_rank, fit_stacker
from numerflow.tiers import TierDecision
from numerflow.training import (
    FoldResult,
    PreparedData,
    load_models,
    load_oof,
    predict_rows,
    prepare_training_data,
)

STACK = "stack"


class RunPaths(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    run_dir: Path

    @property
    def prepared_dir(self) -> Path:
        return self.run_dir / "prepared"

    @property
    def models_dir(self) -> Path:
        return self.run_dir / "models"

    @property
    def fold_cache_dir(self) -> Path:
        return self.run_dir.parent / CACHE_DIR_NAME


class Evaluation(BaseModel):
    """Scores of every base model and the stack, out of fold and on validation."""

    stacker: Stacker
    summary: dict[str, dict[str, dict[str, float | int]]]  # {"oof"|"validation": {model: figures}}
    per_era: dict[str, list[dict[str, Any]]]  # {"oof"|"validation": rows of era -> CORR}
    per_fold: list[dict[str, Any]]
    validation_eras: list[int]


def start_run(config: NumerflowConfig, params: LightGBMParams, decision: TierDecision) -> RunPaths:
    """Create the run directory and record the effective parameters before training."""
    run_id = new_run_id()
    run_dir = config.training.work_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    paths = RunPaths(run_id=run_id, run_dir=run_dir)
    FoldCache(paths.fold_cache_dir).prune()
    BinsCache(config.training.bins_root()).prune()
    effective = {
        "run_id": run_id,
        "params_source": config.training.params_source,
        "params": params.model_dump(mode="json"),
        "tier": {
            "name": decision.tier,
            "reason": decision.reason,
            "fallbacks": [s.tier for s in decision.ladder[1:]],
        },
        "row_limit": config.training.data.row_limit,
        "max_features": config.features.max_features,
        "data_version": config.training.data.version,
        "targets": config.training.targets,
        "folds": config.training.folds.model_dump(mode="json"),
        "stacking": config.training.stacking,
        "seed": config.training.seed,
    }
    output = config.program_output_params
    write_yaml_atomic(run_dir / output.run_file, effective)
    if output.latest_file is not None:
        latest = output.latest_file
        write_yaml_atomic(latest if latest.is_absolute() else config.training.work_dir / latest, effective)
    return paths


def prepare_data(config: NumerflowConfig, params: LightGBMParams, paths: RunPaths) -> PreparedData:
    """Select features and training rows, then bin them once for every fold and target."""
    data = config.training.data
    version_dir = data.version_dir()
    features = select_features(read_features_json(version_dir), config.features)
    train_path = version_dir / "train.parquet"
    n_folds = config.training.folds.n_folds
    return prepare_training_data(
        train_path,
        features,
        config.training.targets,
        params,
        paths.prepared_dir,
        bins_dir=config.training.bins_root(),
        eras=training_eras(train_path, data.era_stride, data.row_limit).tolist(),
        loader=data.loader,
        train_fraction=(n_folds - 1) / n_folds,
    )


def plan_folds(config: NumerflowConfig, prepared: PreparedData) -> list[Fold]:
    folds = config.training.folds
    return make_folds(prepared.eras, folds.n_folds, folds.embargo_eras)


def device_record(decision: TierDecision, probe: GpuProbe, results: list[FoldResult]) -> dict[str, Any]:
    """What the run trained on: the tier, why, what NVML saw, and every fold's step down."""
    return {
        "tier": decision.tier,
        "reason": decision.reason,
        "device_type": decision.params.device_type,
        "capability": decision.capability.model_dump() if decision.capability else None,
        "probe": probe.model_dump(mode="json"),
        "downgrades": [
            {"target": r.target, "fold": r.fold, **step} for r in results for step in r.downgrades
        ],
    }


def model_paths(results: list[FoldResult], targets: list[str]) -> dict[str, list[Path]]:
    return {
        target: [r.model_path for r in sorted(results, key=lambda r: r.fold) if r.target == target]
        for target in targets
    }


def evaluate(
    config: NumerflowConfig, prepared: PreparedData, results: list[FoldResult], paths: RunPaths
) -> Evaluation:
    """Stack the base models and score everything per era, out of fold and on validation."""
    targets = config.training.targets
    main = targets[0]
    kind = config.training.stacking

    oof = load_oof(results, targets)
    meta = pd.read_parquet(prepared.meta_path, columns=["id", main]).set_index("id")
    oof_target = meta[main].reindex(oof.index)
    ranked = era_rank(oof[targets], oof["era"].to_numpy())
    stacker = fit_stacker(kind, ranked, oof_target)
    oof[STACK] = cross_fitted(kind, ranked, oof_target, oof["fold"].to_numpy())
    with atomic_path(paths.run_dir / "oof.parquet") as tmp:
        oof.to_parquet(tmp)
    oof_scores = per_era_corr(oof[[*targets, STACK]], oof_target, oof["era"].to_numpy())

    val_predictions, val_target, val_eras = _predict_validation(config, prepared, results)
    val_predictions[STACK] = stacker.combine(era_rank(val_predictions[targets], val_eras))
    with atomic_path(paths.run_dir / "validation.parquet") as tmp:
        val_predictions.assign(era=val_eras, target=val_target).to_parquet(tmp)
    val_scores = per_era_corr(val_predictions, val_target, val_eras)

    return Evaluation(
        stacker=stacker,
        summary={"oof": summarize_all(oof_scores), "validation": summarize_all(val_scores)},
        per_era={"oof": _era_rows(oof_scores), "validation": _era_rows(val_scores)},
        per_fold=_fold_rows(oof, oof_scores, results),
        validation_eras=sorted({int(e) for e in val_eras}),
    )


def _predict_validation(
    config: NumerflowConfig, prepared: PreparedData, results: list[FoldResult]
) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """Base-model predictions on the labelled validation eras past the embargo, read in batches."""
    main = prepared.targets[0]
    path = config.training.data.version_dir() / "validation.parquet"
    eras = validation_eras(
        path,
        last_train_era=max(prepared.eras),
        embargo=config.training.folds.embargo_eras,
        era_stride=config.training.data.era_stride,
    )
    rows = SelectedRows(path, eras.tolist())
    if len(rows) == 0:
        raise ValueError("no validation eras left after the embargo; lower embargo_eras or add data")
    meta = rows.table(["id", "era", main])
    models = load_models(model_paths(results, prepared.targets))
    predictions = predict_rows(models, FeatureRows(rows, prepared.feature_names))
    predictions.index = pd.Index(meta["id"].to_numpy(zero_copy_only=False).astype(str), name="id")
    target = pd.Series(meta[main].to_numpy(zero_copy_only=False).astype(np.float32), index=predictions.index)
    era_numbers = to_era_numbers(path, meta["era"].to_numpy(zero_copy_only=False))
    labelled = target.notna().to_numpy()
    return predictions[labelled], target[labelled], era_numbers[labelled]


def _era_rows(scores: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {"era": f"{int(era):04d}", **{k: round(float(v), 6) for k, v in row.items()}}
        for era, row in scores.iterrows()
    ]


def _fold_rows(oof: pd.DataFrame, scores: pd.DataFrame, results: list[FoldResult]) -> list[dict[str, Any]]:
    """Mean out-of-fold CORR of each base model within each fold's validation eras."""
    era_to_fold = oof.groupby("era")["fold"].first()
    rows = []
    for result in sorted(results, key=lambda r: (r.target, r.fold)):
        eras = era_to_fold.index[era_to_fold == result.fold]
        figures = summarize(scores.loc[scores.index.isin(eras), result.target])
        rows.append(
            {
                "target": result.target,
                "fold": result.fold,
                "train_rows": result.train_rows,
                "validation_rows": result.validation_rows,
                "corr_mean": round(figures["mean"], 6),
                "corr_sharpe": round(figures["sharpe"], 4),
                "seconds": result.seconds,
                "device": result.device_type,
                "tier": result.tier,
                "downgrades": len(result.downgrades),
                "reused": result.reused,
            }
        )
    return rows


def write_run_manifest(
    config: NumerflowConfig,
    params: LightGBMParams,
    device: dict[str, Any],
    paths: RunPaths,
    prepared: PreparedData,
    folds: list[Fold],
    results: list[FoldResult],
    evaluation: Evaluation,
    created_at: str,
) -> Path:
    """Write manifest.json once training is scored, then point `<work_dir>/LATEST` at this run."""
    data = config.training.data
    manifest = Manifest(
        run_id=paths.run_id,
        created_at=created_at,
        finished_at=utc_now(),
        code_version=code_version(),
        data={
            "version": data.version,
            "dir": str(data.version_dir()),
            "era_stride": data.era_stride,
            "row_limit": data.row_limit,
            "training_rows": prepared.rows,
            "bins": prepared.bins.model_dump(mode="json"),
            "training_eras": [prepared.eras[0], prepared.eras[-1], len(prepared.eras)],
            "validation_eras": evaluation.validation_eras,
        },
        features=prepared.feature_names,
        targets=prepared.targets,
        params=params.model_dump(mode="json") | {"seed": config.training.seed},
        device=device,
        folds=[fold.model_dump(mode="json") for fold in folds],
        fold_results=[r.model_dump(mode="json") for r in results],
        models={
            t: [str(p.relative_to(paths.run_dir)) for p in ps]
            for t, ps in model_paths(results, prepared.targets).items()
        },
        stacker=evaluation.stacker.model_dump(mode="json"),
        metrics={"summary": evaluation.summary, "per_fold": evaluation.per_fold},
    )
    path = write_manifest(paths.run_dir, manifest)
    mark_latest(config.training.work_dir, paths.run_dir)
    return path
