"""Predictions of fold models: each base model is the mean of its folds, read in batches."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from numerflow.data.rows import FeatureRows
from numerflow.train.model_files import load_booster

Models = dict[str, list[lgb.Booster]]  # fold models per target


def load_models(model_paths: dict[str, list[Path]]) -> Models:
    return {target: [load_booster(p) for p in paths] for target, paths in model_paths.items()}


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
