"""Per-era scoring with numerai-tools, and the summary figures Numerai participants read.

`numerai_corr` is Numerai's own CORR (tie-kept rank, gaussianise, ^1.5 on both sides); it is
applied era by era, as Numerai scores, then summarised as mean, std (ddof=0), sharpe and
max drawdown of the cumulative per-era score (from zero: before the first era nothing is
earned, so a losing first era counts), as in Numerai's tutorial.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numerai_tools.scoring import numerai_corr


def per_era_corr(predictions: pd.DataFrame, target: pd.Series, eras: np.ndarray) -> pd.DataFrame:
    """CORR of every prediction column against `target`, one row per era.

    Rows where the target is NaN are dropped first; every frame shares one index.
    """
    target = target.rename("target")
    known = target.notna().to_numpy()
    predictions, target, eras = predictions[known], target[known], np.asarray(eras)[known]
    scores = {}
    for era in np.unique(eras):
        rows = eras == era
        scores[era] = numerai_corr(predictions[rows], target[rows])
    frame = pd.DataFrame.from_dict(scores, orient="index")
    frame.index.name = "era"
    return frame


def summarize(per_era: pd.Series) -> dict[str, float]:
    """mean, std, sharpe and max drawdown of a per-era score series."""
    values = per_era.dropna().astype(float)
    if values.empty:
        return {
            "mean": float("nan"),
            "std": float("nan"),
            "sharpe": float("nan"),
            "max_drawdown": float("nan"),
            "eras": 0,
        }
    mean, std = float(values.mean()), float(values.std(ddof=0))
    cumulative = values.cumsum()
    # The peak starts at zero (nothing earned yet), so a losing first era is a drawdown too.
    peak = cumulative.expanding().max().clip(lower=0.0)
    drawdown = float((peak - cumulative).max())
    return {
        "mean": mean,
        "std": std,
        "sharpe": mean / std if std > 0 else float("nan"),
        "max_drawdown": drawdown,
        "eras": len(values),
    }


def summarize_all(per_era: pd.DataFrame) -> dict[str, dict[str, float]]:
    return {column: summarize(per_era[column]) for column in per_era.columns}
