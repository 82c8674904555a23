import numpy as np
import pandas as pd
import pytest
from numerai_tools.scoring import numerai_corr

from numerflow.score.metrics import per_era_corr, summarize, summarize_recent
from numerflow.score.results import ScoreFigures
from numerflow.score.stacking import cross_fitted, era_rank, fit_stacker


def test_summary_figures_by_hand() -> None:
    figures = summarize(pd.Series([0.1, -0.2, 0.05, 0.3]))
    assert figures.mean == pytest.approx(0.0625)
    assert figures.std == pytest.approx(np.std([0.1, -0.2, 0.05, 0.3]))  # ddof=0
    assert figures.sharpe == pytest.approx(0.0625 / np.std([0.1, -0.2, 0.05, 0.3]))
    # cumulative 0.1, -0.1, -0.05, 0.25: worst fall from a peak is 0.1 -> -0.1
    assert figures.max_drawdown == pytest.approx(0.2)
    assert figures.eras == 4


def test_drawdown_is_measured_from_zero() -> None:
    # cumulative -0.1, -0.05, 0.0: the first era already falls 0.1 below the start
    assert summarize(pd.Series([-0.1, 0.05, 0.05])).max_drawdown == pytest.approx(0.1)
    assert summarize(pd.Series([0.05, 0.05])).max_drawdown == pytest.approx(0.0)


def test_recent_figures_are_the_last_eras_only() -> None:
    per_era = pd.Series([0.5] * 3 + [-0.1, 0.05, 0.05], index=range(1, 7))
    figures = summarize_recent(per_era, eras=3)
    assert figures.eras == 6 and figures.recent.eras == 3
    assert figures.recent.mean == pytest.approx(0.0) and figures.recent.max_drawdown == pytest.approx(0.1)
    assert figures.mean == pytest.approx(summarize(per_era).mean)
    stored = figures.model_dump(mode="json")  # as a manifest keeps them: flat, by window
    assert stored["eras_last3"] == 3 and stored["mean_last3"] == pytest.approx(0.0)
    assert ScoreFigures.model_validate(stored) == figures


def _scored_frame(rng: np.random.Generator, eras: int = 6, rows: int = 100) -> tuple:
    ids = [f"n{i:015x}" for i in range(eras * rows)]
    era = np.repeat(np.arange(1, eras + 1), rows)
    target = pd.Series(rng.choice([0, 0.25, 0.5, 0.75, 1.0], size=len(ids)), index=ids)
    good = target + rng.normal(0, 0.3, len(ids))
    noise = pd.Series(rng.normal(size=len(ids)), index=ids)
    return pd.DataFrame({"good": good, "noise": noise}, index=ids), target, era


def test_per_era_corr_is_numerai_corr_per_era() -> None:
    predictions, target, eras = _scored_frame(np.random.default_rng(0))
    scores = per_era_corr(predictions, target, eras)
    assert list(scores.index) == [1, 2, 3, 4, 5, 6]
    rows = eras == 3
    expected = numerai_corr(predictions[rows], target[rows].rename("t"))
    assert scores.loc[3, "good"] == pytest.approx(expected["good"])
    assert scores["good"].mean() > 0.3 and abs(scores["noise"].mean()) < 0.1


def test_era_rank_is_within_era_and_open_interval() -> None:
    frame = pd.DataFrame({"a": [3.0, 1.0, 2.0, 10.0, 20.0]})
    ranked = era_rank(frame, np.array([1, 1, 1, 2, 2]))
    assert ranked["a"].tolist() == pytest.approx([5 / 6, 1 / 6, 3 / 6, 1 / 4, 3 / 4])


def test_stackers() -> None:
    predictions, target, eras = _scored_frame(np.random.default_rng(1))
    ranked = era_rank(predictions, eras)
    assert fit_stacker("mean", ranked, target).weights == [0.5, 0.5]
    assert fit_stacker("none", ranked, target).weights == [1.0, 0.0]
    ridge = fit_stacker("ridge", ranked, target)
    assert sum(ridge.weights) == pytest.approx(1.0) and min(ridge.weights) >= 0
    assert ridge.weights[0] > 0.9  # the informative model carries the stack


def test_ridge_stack_beats_mean_when_one_base_model_is_noise() -> None:
    predictions, target, eras = _scored_frame(np.random.default_rng(2), eras=12)
    ranked = era_rank(predictions, eras)
    folds = (eras - 1) // 3
    ridge = cross_fitted("ridge", ranked, target, folds)
    mean = cross_fitted("mean", ranked, target, folds)
    scores = per_era_corr(pd.DataFrame({"ridge": ridge, "mean": mean}), target, eras).mean()
    assert scores["ridge"] > scores["mean"] > 0


def test_cross_fitting_never_sees_the_held_out_fold() -> None:
    predictions, target, eras = _scored_frame(np.random.default_rng(3), eras=4)
    ranked = era_rank(predictions, eras)
    folds = (eras - 1) // 2  # folds 0 and 1
    flipped = target.copy()
    flipped[folds == 1] = 1 - flipped[folds == 1]  # fold 1's labels point the other way
    held_out = cross_fitted("ridge", ranked, flipped, folds)[folds == 1]
    in_sample = fit_stacker("ridge", ranked[folds == 0], flipped[folds == 0]).combine(ranked[folds == 1])
    pd.testing.assert_series_equal(held_out, in_sample, check_names=False)
