"""Typed, bounded flow parameters for manual runs (CLI `--param`, the UI's custom run form).

Each parameter reuses the bounds of the config field it overrides, so the deployment's
parameter schema refuses a bad value before a run is created, naming the field; `overrides`
(FILE.KEY -> value) reaches every other key and is validated when the run starts.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from numerflow.config.models import (
    TARGET_PATTERN,
    DataConfig,
    FeaturesConfig,
    FoldsConfig,
    LightGBMParams,
    RoundScheduleConfig,
    ScaleOutConfig,
    TrainingConfig,
)


def _like(model: type[BaseModel], field: str, kind: Any) -> Any:
    """`kind | None` with the constraints of `model.field`."""
    return Annotated[kind | None, *model.model_fields[field].metadata]


NFolds = _like(FoldsConfig, "n_folds", int)
EmbargoEras = _like(FoldsConfig, "embargo_eras", int)
EraStride = _like(DataConfig, "era_stride", int)
DataVersion = _like(DataConfig, "version", str)
MaxFeatures = _like(FeaturesConfig, "max_features", int)
NEstimators = _like(LightGBMParams, "num_iterations", int)
LearningRate = _like(LightGBMParams, "learning_rate", float)
Targets = _like(TrainingConfig, "targets", list[Annotated[str, Field(pattern=TARGET_PATTERN.pattern)]])
DaskAddress = _like(ScaleOutConfig, "dask_address", str)
FeatureSet = Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_]+$")]
Models = list[Annotated[str, Field(min_length=1)]] | None
RoundNumber = Annotated[int | None, Field(ge=1)]
WaitMinutes = Annotated[int, *RoundScheduleConfig.model_fields["wait_for_round_minutes"].metadata]

# flow parameter -> config key it overrides
PARAMETER_KEYS = {
    "n_folds": "training.folds.n_folds",
    "embargo_eras": "training.folds.embargo_eras",
    "era_stride": "training.data.era_stride",
    "data_version": "training.data.version",
    "feature_set": "features.feature_set",
    "max_features": "features.max_features",
    "targets": "training.targets",
    "n_estimators": "params.num_iterations",  # the active parameter file's, program or manual
    "learning_rate": "params.learning_rate",
    "dask_address": "training.scale_out.dask_address",
}


def overrides_from(parameters: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    """Config overrides from the typed parameters that were set, plus the free-form ones."""
    overrides = dict(extra or {})
    for name, key in PARAMETER_KEYS.items():
        if parameters.get(name) is not None:
            overrides[key] = parameters[name]
    if parameters.get("dry_run"):
        overrides["training.numerai.upload"] = False
    return overrides
