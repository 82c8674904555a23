"""Per-era scoring with numerai-tools, and the summary figures Numerai participants read.

`numerai_corr` is Numerai's own CORR (tie-kept rank, gaussianise, ^1.5 on both sides);
`correlation_contribution` is MMC against the meta model and BMC against a benchmark model;
`feature_neutral_corr` is FNC and `max_feature_correlation` the largest feature exposure. Each
is applied era by era, as Numerai scores, then summarised as mean, std (ddof=0), sharpe and
max drawdown of the cumulative per-era score (from zero: before the first era nothing is
earned, so a losing first era counts), as in Numerai's tutorial.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
from numerai_tools.scoring import (
    correlation_contribution,
    feature_neutral_corr,
    max_feature_correlation,
    numerai_corr,
)

from numerflow.score.results import RECENT_ERAS, Figures, ScoreFigures


def per_era_corr(predictions: pd.DataFrame, target: pd.Series, eras: np.ndarray) -> pd.DataFrame:
    """CORR of every prediction column against `target`, one row per era.

    Rows where the target is NaN are dropped first; every frame shares one index.
    """
    target = target.rename("target")
    known = target.notna().to_numpy()
    predictions, target, eras = predictions[known], target[known], np.asarray(eras)[known]
    return _per_era(eras, lambda rows: numerai_corr(predictions[rows], target[rows]))


def per_era_contribution(
    predictions: pd.DataFrame, reference: pd.Series, target: pd.Series, eras: np.ndarray
) -> pd.DataFrame:
    """`correlation_contribution` of every column against `reference` (the meta model: MMC; a
    benchmark model: BMC), one row per era, on the rows the reference covers; eras it does not
    cover at all have no row."""
    reference = reference.reindex(predictions.index).rename("reference")
    target = target.rename("target")
    known = reference.notna().to_numpy() & target.notna().to_numpy()
    predictions, reference, target = predictions[known], reference[known], target[known]
    return _per_era(
        np.asarray(eras)[known],
        lambda rows: correlation_contribution(predictions[rows], reference[rows], target[rows]),
    )


def per_era_feature_scores(
    predictions: pd.DataFrame, target: pd.Series, era_features: Iterable[tuple[int, pd.DataFrame]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """FNC (`feature_neutral_corr`) and the max feature exposure (`max_feature_correlation`) of
    every column, one row per era; `era_features` yields each era's features indexed by id."""
    target = target.rename("target")
    fnc, exposure = {}, {}
    for era, unsorted in era_features:
        features = unsorted.sort_index()  # numerai-tools' neutralisation wants ids in order
        rows = predictions.loc[features.index]
        # A constant column has neither figure (numerai-tools would fail on it): it stays NaN
        varying = rows.loc[:, rows.nunique() > 1]
        fnc[era] = feature_neutral_corr(varying, features, target.loc[features.index]).reindex(rows.columns)
        exposure[era] = pd.Series(
            {c: max_feature_correlation(varying[c], features)[1] for c in varying}, dtype=float
        ).reindex(rows.columns)
    return _by_era(fnc), _by_era(exposure)


def _per_era(eras: np.ndarray, score: Callable[[np.ndarray], pd.Series]) -> pd.DataFrame:
    return _by_era({era: score(eras == era) for era in np.unique(eras)})


def _by_era(scores: dict[int, pd.Series]) -> pd.DataFrame:
    frame = pd.DataFrame.from_dict(scores, orient="index")
    frame.index.name = "era"
    return frame


def summarize(per_era: pd.Series) -> Figures:
    """mean, std, sharpe and max drawdown of a per-era score series."""
    values = per_era.dropna().astype(float)
    if values.empty:
        nan = float("nan")
        return Figures(mean=nan, std=nan, sharpe=nan, max_drawdown=nan, eras=0)
    mean, std = float(values.mean()), float(values.std(ddof=0))
    cumulative = values.cumsum()
    # The peak starts at zero (nothing earned yet), so a losing first era is a drawdown too.
    peak = cumulative.expanding().max().clip(lower=0.0)
    drawdown = float((peak - cumulative).max())
    return Figures(
        mean=mean,
        std=std,
        sharpe=mean / std if std > 0 else float("nan"),
        max_drawdown=drawdown,
        eras=len(values),
    )


def summarize_recent(per_era: pd.Series, eras: int = RECENT_ERAS) -> ScoreFigures:
    """`summarize` over every era, then over the last `eras` eras."""
    values = per_era.dropna().sort_index()
    return ScoreFigures(**dict(summarize(values)), window=eras, recent=summarize(values.iloc[-eras:]))


def summarize_all(per_era: pd.DataFrame) -> dict[str, ScoreFigures]:
    return {column: summarize_recent(per_era[column]) for column in per_era.columns}
