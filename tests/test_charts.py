"""The validation chart: one line per model in each cumulative panel, MMC and BMC panels only
when they were computed, and a small PNG of the figure's size."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from PIL import Image

from numerflow.score.charts import DPI, NEGATIVE, POSITIVE, validation_chart, validation_figure
from numerflow.score.metrics import summarize_all
from numerflow.score.results import STACK, Evaluation, MetricScores
from numerflow.score.stacking import Stacker
from numerflow.score.validation import era_rows

MODELS = ["target", "target_cyrusd_20", STACK]
REASON = "meta_model.parquet is not in data/v5.2"


def _scores(eras: range, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({m: rng.normal(0.01, 0.03, len(eras)) for m in MODELS}, index=eras)


def _metric(scores: pd.DataFrame | None, against: str) -> MetricScores:
    if scores is None:
        return MetricScores(against=against, not_computed=REASON)
    return MetricScores(against=against, summary=summarize_all(scores), per_era=era_rows(scores))


def _evaluation(mmc: pd.DataFrame | None, bmc: pd.DataFrame | None, corr: pd.DataFrame) -> Evaluation:
    return Evaluation(
        stacker=Stacker(kind="mean", columns=MODELS[:2], weights=[0.5, 0.5]),
        summary={"oof": summarize_all(corr), "validation": summarize_all(corr)},
        per_era={"oof": [], "validation": era_rows(corr)},
        per_fold=[],
        validation_eras=list(corr.index),
        validation_metrics={"mmc": _metric(mmc, "meta model"), "bmc": _metric(bmc, "v52_lgbm_ender20")},
    )


def _legend(ax) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


def test_panels_follow_what_was_computed_with_one_line_per_model() -> None:
    corr = _scores(range(600, 640), seed=1)
    only_bmc = validation_figure(_evaluation(None, _scores(range(600, 640), 2), corr), "t")
    titles = [ax.get_title(loc="left") for ax in only_bmc.axes]
    assert titles == ["cumulative CORR", "stack CORR per era", "cumulative BMC (v52_lgbm_ender20)"]
    for ax in (only_bmc.axes[0], only_bmc.axes[2]):
        assert _legend(ax) == [STACK, "target", "target_cyrusd_20"]  # the stack first, then each model

    both = validation_figure(_evaluation(_scores(range(620, 640), 3), _scores(range(600, 640), 4), corr), "t")
    assert [ax.get_title(loc="left") for ax in both.axes][2:] == [
        "cumulative MMC (meta model)",
        "cumulative BMC (v52_lgbm_ender20)",
    ]
    neither = validation_figure(_evaluation(None, None, corr), "t")
    assert len(neither.axes) == 2


def test_lines_are_cumulative_per_era_and_bars_show_the_sign() -> None:
    corr = _scores(range(600, 640), seed=5)
    shuffled = corr.sample(frac=1.0, random_state=0)  # rows in any order are charted by era
    figure = validation_figure(_evaluation(None, None, shuffled), "t")
    stack_line = figure.axes[0].get_lines()[0]
    assert list(stack_line.get_xdata()) == list(range(600, 640))
    np.testing.assert_allclose(stack_line.get_ydata(), corr[STACK].cumsum().to_numpy(), atol=1e-5)
    bars = figure.axes[1].patches
    assert len(bars) == len(corr)
    expected = [POSITIVE if v >= 0 else NEGATIVE for v in corr[STACK].round(6)]
    assert [to_hex(bar.get_facecolor()) for bar in bars] == expected


def test_chart_is_a_small_png_of_the_figure_size() -> None:
    evaluation = _evaluation(
        _scores(range(700, 800), 6), _scores(range(600, 800), 7), _scores(range(600, 800), 8)
    )
    png = validation_chart(evaluation, "main", "20260101T000000Z-abc123")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = validation_figure(evaluation, "t").get_size_inches() * DPI
    assert Image.open(io.BytesIO(png)).size == (round(width), round(height))
    assert len(png) < 60_000  # it is carried inline in the run summary artifact


def test_no_validation_era_is_a_clear_error() -> None:
    evaluation = _evaluation(None, None, _scores(range(600, 610), 9)).model_copy(
        update={"per_era": {"oof": [], "validation": []}}
    )
    with pytest.raises(ValueError, match="no per-era scores to chart"):
        validation_figure(evaluation, "t")
