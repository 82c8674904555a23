"""Stacking: a meta-model over the era-ranked predictions of the base models.

Base models (one per target) are ranked within each era first, so only their ordering
counts, as in Numerai's scoring. The meta-model is then
- `mean`: the equal-weight average of the ranks;
- `ridge`: non-negative ridge weights fitted to the main target on out-of-fold predictions;
- `none`: the main target's model alone.
`cross_fitted` scores a stacker honestly on out-of-fold rows: for ridge, each fold's rows
are predicted by weights fitted on the other folds only.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from sklearn.linear_model import Ridge

StackingKind = Literal["mean", "ridge", "none"]


class Stacker(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: StackingKind
    columns: list[str]
    weights: list[float]

    def combine(self, ranked: pd.DataFrame) -> pd.Series:
        """Weighted sum of the ranked base predictions."""
        values = ranked[self.columns].to_numpy(dtype=np.float64) @ np.asarray(self.weights)
        return pd.Series(values, index=ranked.index, name="stack")


def era_rank(predictions: pd.DataFrame, eras: np.ndarray) -> pd.DataFrame:
    """Percentile rank of each column within each era, in (0, 1): (rank - 0.5) / n."""
    grouped = predictions.groupby(np.asarray(eras), sort=False)
    ranks = grouped.rank(method="average")
    counts = grouped.transform("count")
    return (ranks - 0.5) / counts


def fit_stacker(kind: StackingKind, ranked: pd.DataFrame, target: pd.Series) -> Stacker:
    """Fit the meta-model on ranked base predictions; the first column is the main model."""
    columns = list(ranked.columns)
    if kind == "none" or len(columns) == 1:
        weights = [1.0] + [0.0] * (len(columns) - 1)
    elif kind == "mean":
        weights = [1.0 / len(columns)] * len(columns)
    else:
        known = target.notna().to_numpy()
        model = Ridge(alpha=1.0, positive=True, fit_intercept=True)
        model.fit(ranked[known].to_numpy(), target[known].to_numpy() - 0.5)
        weights = _normalised(model.coef_, fallback_columns=len(columns))
    return Stacker(kind=kind, columns=columns, weights=weights)


def cross_fitted(kind: StackingKind, ranked: pd.DataFrame, target: pd.Series, folds: np.ndarray) -> pd.Series:
    """Out-of-fold meta predictions: each fold is combined by a stacker fitted without it."""
    combined = pd.Series(np.nan, index=ranked.index, name="stack")
    for fold in np.unique(folds):
        held_out = folds == fold
        stacker = fit_stacker(kind, ranked[~held_out], target[~held_out])
        combined[held_out] = stacker.combine(ranked[held_out]).to_numpy()
    return combined


def _normalised(coefficients: np.ndarray, fallback_columns: int) -> list[float]:
    total = float(np.sum(coefficients))
    if total <= 0:  # every weight clipped at zero: no base model helps, keep them equal
        return [1.0 / fallback_columns] * fallback_columns
    return [float(c) / total for c in coefficients]
