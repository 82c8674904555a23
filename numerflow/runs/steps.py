"""The weekly run's bookkeeping steps as plain functions: the run folder, data preparation,
folds, the device record and the manifest. Prefect tasks wrap these; tests call them directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from numerflow.config.models import LightGBMParams, NumerflowConfig
from numerflow.data.binned import BinsCache
from numerflow.data.files import (
    read_features_json,
    select_features,
    training_eras,
)
from numerflow.gpu.probe import GpuProbe
from numerflow.gpu.tiers import TierDecision
from numerflow.io import write_yaml_atomic
from numerflow.runs.manifest import Manifest, code_version, mark_latest, new_run_id, utc_now, write_manifest
from numerflow.score.evaluate import Evaluation, model_paths
from numerflow.train.fit import FoldResult
from numerflow.train.foldcache import CACHE_DIR_NAME, FoldCache
from numerflow.train.folds import Fold, make_folds
from numerflow.train.prepare import PreparedData, bin_training_rows


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
        "era_stride": config.training.data.era_stride,  # after the GPU decision's data limits
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
    return bin_training_rows(
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
