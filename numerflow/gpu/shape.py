"""The shape the device decision sizes training for: a run's most demanding fold (its plan gives
the figures, numerflow.runs.device), assumed figures, or one fold of data already binned."""

from __future__ import annotations

import re

from numerflow.config.models import NumerflowConfig
from numerflow.gpu.vram import TrainingShape
from numerflow.train.folds import Fold
from numerflow.train.prepare import PreparedData


def shape_for(config: NumerflowConfig, rows: int, features: int, n_folds: int | None = None) -> TrainingShape:
    """`rows` x `features` trained with the config's era stride in `n_folds` (default: the config's)."""
    n_folds = n_folds or config.training.folds.n_folds
    return training_shape_of(rows, features, config.training.data.era_stride, n_folds)


def training_shape_of(rows: int, features: int, era_stride: int, n_folds: int) -> TrainingShape:
    """A fold of `rows` x `features` (after `era_stride`) in `n_folds` folds."""
    return TrainingShape(
        rows=rows,
        features=features,
        era_stride=era_stride,
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
