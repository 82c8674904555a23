"""The run summary leads with the figures a participant compares, each with its era count."""

from __future__ import annotations

import base64
import re

import pandas as pd

from numerflow.report.summary import markdown_summary
from numerflow.score.metrics import summarize_all
from numerflow.score.results import STACK, Evaluation, MetricScores
from numerflow.score.stacking import Stacker

REASON = "meta_model.parquet is not in data/v5.2 (training.yaml numerai.download fetches it)"


def _evaluation(corr: list[float], bmc: list[float]) -> Evaluation:
    scores = pd.DataFrame({"target": corr, STACK: corr}, index=range(1, len(corr) + 1))
    contribution = pd.DataFrame({"target": bmc, STACK: bmc}, index=range(1, len(bmc) + 1))
    return Evaluation(
        stacker=Stacker(kind="mean", columns=["target"], weights=[1.0]),
        summary={"oof": summarize_all(scores), "validation": summarize_all(scores)},
        per_era={"oof": [], "validation": []},
        per_fold=[],
        validation_eras=list(range(1, len(corr) + 1)),
        validation_metrics={
            "mmc": MetricScores(against="meta model", not_computed=REASON),
            "bmc": MetricScores(against="v52_lgbm_ender20", summary=summarize_all(contribution)),
            "fnc": MetricScores(summary=summarize_all(scores)),
        },
    )


def test_summary_leads_with_corr_mmc_bmc_and_eras_per_slot() -> None:
    evaluations = {
        "alpha": _evaluation([0.02, 0.04, -0.01], [0.01, -0.03, 0.005]),
        "beta": _evaluation([0.01] * 5, [0.002] * 4),
    }
    text = markdown_summary("run-1", "v5.2", evaluations, {}, None)
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("|"))
    assert header < next(i for i, line in enumerate(lines) if line.startswith("- data version"))
    assert lines[header].split(" | ")[1:5] == ["validation CORR", "sharpe", "max drawdown", "eras"]
    alpha = lines[header + 2]
    assert alpha.startswith("| alpha | **0.0167** |") and "| 0.0100 | 3 |" in alpha  # drawdown, eras
    assert "| not computed |" in alpha and "-0.0050 (sharpe" in alpha and "drawdown 0.0300, 3 eras)" in alpha
    assert "| beta | **0.0100** |" in lines[header + 3] and "4 eras)" in lines[header + 3]
    assert text.count(f"- MMC not computed: {REASON}") == 1  # once, not once per slot
    assert text.count("- BMC is measured against v52_lgbm_ender20") == 1
    # the full table carries every computed metric with its eras; MMC has no made-up row
    assert "| alpha | validation | bmc | stack | -0.0050 |" in text
    assert "| mmc |" not in text


def test_each_slots_chart_follows_the_lead_table_as_an_inline_png() -> None:
    evaluations = {
        "alpha": _evaluation([0.02, 0.04], [0.01, 0.0]),
        "beta": _evaluation([0.01] * 3, [0.0] * 3),
    }
    charts = {"alpha": b"\x89PNG alpha", "beta": b"\x89PNG beta"}
    lines = markdown_summary("run-1", "v5.2", evaluations, {}, None, charts=charts).splitlines()
    images = [i for i, line in enumerate(lines) if line.startswith("![")]
    last_row = min(i for i, line in enumerate(lines) if line.startswith("| beta |"))  # the lead table
    assert last_row < images[0] and images[-1] < lines.index("- data version: **v5.2**")
    for i, (slot, png) in zip(images, charts.items(), strict=True):
        alt, uri = re.fullmatch(r"!\[(.*)\]\(data:image/png;base64,(.*)\)", lines[i]).groups()
        assert slot in alt and base64.b64decode(uri) == png
