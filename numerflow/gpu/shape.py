"""The shape a run would train on, read from the era column and features.json before any
feature is loaded, so the GPU decision can size the run before the data is binned."""

from __future__ import annotations

import re

from numerflow.config.models import NumerflowConfig
from numerflow.data.files import read_features_json, select_features, training_eras
from numerflow.data.rows import SelectedRows
from numerflow.gpu.vram import TrainingShape


def training_shape(config: NumerflowConfig) -> TrainingShape:
    """Rows (after era_stride and row_limit) and features the run's config selects."""
    data = config.training.data
    version_dir = data.version_dir()
    features = select_features(read_features_json(version_dir), config.features)
    path = version_dir / "train.parquet"
    rows = len(SelectedRows(path, training_eras(path, data.era_stride, data.row_limit).tolist()))
    return shape_for(config, rows, len(features))


def shape_for(config: NumerflowConfig, rows: int, features: int) -> TrainingShape:
    """A shape of `rows` x `features` trained with the config's era stride and folds."""
    n_folds = config.training.folds.n_folds
    return TrainingShape(
        rows=rows,
        features=features,
        era_stride=config.training.data.era_stride,
        train_fraction=(n_folds - 1) / n_folds,  # the largest fold's subset, before the embargo
    )


def parse_shape(text: str) -> tuple[int, int]:
    """'2700000x2376' or '2.7e6x2376' -> (rows, features)."""
    match = re.fullmatch(r"\s*([\d.eE+_,]+)\s*[xX]\s*([\d_,]+)\s*", text)
    wrong = ValueError(f"{text!r} is not a shape like 2700000x2376 (rows x features, both at least 1)")
    if match is None:
        raise wrong
    try:
        rows, features = int(float(match.group(1).replace(",", ""))), int(match.group(2).replace(",", ""))
    except ValueError:
        raise wrong from None
    if rows < 1 or features < 1:
        raise wrong
    return rows, features
