"""Predictions of fold models: each base model is the mean of its folds, read in batches."""

from __future__ import annotations

import os
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from numerflow.data.rows import FeatureRows

Models = dict[str, list[lgb.Booster]]  # fold models per target
# lightgbm's Python package ends every model it writes with this line. LightGBM 4.7.0 given a
# model file cut short aborts or crashes the whole process (measured: cut at 10 % SIGABRT, at
# 99 % SIGSEGV) or loads it, so a file without its last line is refused before LightGBM reads it.
MODEL_LAST_LINE = b"pandas_categorical:"
TAIL_BYTES = 1 << 16


class ModelFileError(ValueError):
    """A model file is missing or incomplete."""


def check_model_file(path: Path) -> None:
    """Raise `ModelFileError` unless `path` is a whole LightGBM model file."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - TAIL_BYTES))
            tail = handle.read()
    except OSError as exc:
        raise ModelFileError(
            f"{path}: the model file cannot be read ({exc}); train again (`numerflow run`)"
        ) from None
    last = tail.rstrip(b"\n").rpartition(b"\n")[2]
    if not (tail.endswith(b"\n") and last.startswith(MODEL_LAST_LINE) and b"end of parameters" in tail):
        raise ModelFileError(
            f"{path}: the LightGBM model file is incomplete (cut short after it was written; it "
            "lacks its last line); train again (`numerflow run`) before submitting from this run"
        )


def load_models(model_paths: dict[str, list[Path]]) -> Models:
    for paths in model_paths.values():
        for path in paths:
            check_model_file(path)
    return {target: [lgb.Booster(model_file=str(p)) for p in paths] for target, paths in model_paths.items()}


def predict_matrix(models: Models, features: np.ndarray) -> pd.DataFrame:
    """Each base model's prediction: the mean of its fold models, one column per target."""
    return pd.DataFrame(
        {
            target: np.mean([b.predict(features) for b in boosters], axis=0)
            for target, boosters in models.items()
        }
    )


def predict(model_paths: dict[str, list[Path]], features: np.ndarray) -> pd.DataFrame:
    return predict_matrix(load_models(model_paths), features)


def predict_rows(models: Models, rows: FeatureRows) -> pd.DataFrame:
    """Predictions for rows read batch by batch, so the features are never all in memory."""
    parts = [predict_matrix(models, block) for block in rows.blocks()]
    if not parts:
        return pd.DataFrame({target: np.empty(0) for target in models})
    return pd.concat(parts, ignore_index=True)
