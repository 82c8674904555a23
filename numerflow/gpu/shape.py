"""The shape the GPU decision sizes a run for, read from the era column and features.json before
any feature is loaded (so a cut can still be applied), or from data already binned."""

from __future__ import annotations

import re

from numerflow.config.models import NumerflowConfig
from numerflow.data.files import read_features_json, select_features, training_eras
from numerflow.data.rows import SelectedRows
from numerflow.gpu.vram import TrainingShape
from numerflow.runs.plan import features_config_of, select_slots
from numerflow.train.folds import Fold
from numerflow.train.prepare import PreparedData


def run_shape(config: NumerflowConfig, version: str, only: list[str] | None = None) -> TrainingShape:
    """The most demanding fold of the run: its rows (after era_stride and row_limit) with the
    widest slot's features and the largest share of rows any slot's folds train on."""
    data = config.training.data
    version_dir = data.dir / version
    features_json = read_features_json(version_dir)
    slots = select_slots(config, only)
    features = max(
        len(select_features(features_json, features_config_of(config.features, slot))) for slot in slots
    )
    n_folds = max((slot.folds or config.training.folds).n_folds for slot in slots)
    path = version_dir / "train.parquet"
    rows = len(SelectedRows(path, training_eras(path, data.era_stride, data.row_limit).tolist()))
    return shape_for(config, rows, features, n_folds)


def shape_for(config: NumerflowConfig, rows: int, features: int, n_folds: int | None = None) -> TrainingShape:
    """`rows` x `features` trained with the config's era stride in `n_folds` (default: the config's)."""
    n_folds = n_folds or config.training.folds.n_folds
    return TrainingShape(
        rows=rows,
        features=features,
        era_stride=config.training.data.era_stride,
        train_fraction=(n_folds - 1) / n_folds,  # a fold's subset, before the embargo takes its share
    )


def fold_shape(prepared: PreparedData, fold: Fold) -> TrainingShape:
    """One fold of data already binned (a Dask worker deciding for its own GPU): its share of
    the eras; eras hold similar numbers of rows."""
    share = max(1, len(fold.train_eras)) / max(1, len(prepared.eras))
    return TrainingShape(rows=prepared.rows, features=len(prepared.feature_names), train_fraction=share)


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
