"""Scoring results travel as typed models: manifests keep their stored form (older ones still
load), and every renderer takes its lead-metric columns from the scorer's one list."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

from numerflow.report.console import validation_lines
from numerflow.report.history import history_markdown
from numerflow.report.summary import lead_table
from numerflow.runs.history import slot_history
from numerflow.runs.manifest import Manifest, SlotMetrics, read_manifest, write_manifest
from numerflow.score.charts import validation_figure
from numerflow.score.metrics import summarize_all
from numerflow.score.results import STACK, Evaluation, MetricScores
from numerflow.score.stacking import Stacker
from numerflow.score.validation import LEAD_METRICS, era_rows

matplotlib.use("Agg")

# A manifest as numerflow wrote it before the last-200-era figures, typed parts and final models:
# bare figures (one undefined, stored as null), a data record with a key no longer written and
# fewer than today's, one step down the device ladder, no MMC record at all.
OLD_FIGURES = {"mean": 0.02, "std": 0.01, "sharpe": 2.0, "max_drawdown": 0.03, "eras": 40}
OLD_MANIFEST = {
    "run_id": "20261120T160000Z-abc123",
    "slot": "main",
    "created_at": "2026-11-20T16:00:00+00:00",
    "code_version": "0.1.0",
    "data": {"version": "v5.2", "dir": "data/v5.2", "era_stride": 4, "feature_set": "small"},
    "features": ["feature_a"],
    "targets": ["target"],
    "params": {"learning_rate": 0.01, "seed": 42},
    "device": {
        "tier": "gpu",
        "reason": "fits",
        "device_type": "cuda",
        "downgrades": [{"target": "target", "fold": 1, "from": "gpu", "to": "cpu", "error": "out of memory"}],
    },
    "folds": [],
    "stacker": {"kind": "mean", "columns": ["target"], "weights": [1.0]},
    "metrics": {
        "summary": {
            "oof": {"target": OLD_FIGURES},
            "validation": {"target": OLD_FIGURES, STACK: OLD_FIGURES | {"sharpe": None}},
        },
        "per_fold": [{"target": "target", "fold": 0, "corr_mean": 0.02}],
        "validation": {"bmc": {"against": "v52_lgbm_ender20", "summary": {STACK: OLD_FIGURES}}},
    },
}


def test_an_older_manifest_loads_typed_and_keeps_what_it_stored(tmp_path: Path) -> None:
    slot_dir = tmp_path / OLD_MANIFEST["run_id"] / "slots" / "main"
    slot_dir.mkdir(parents=True)
    (slot_dir / "manifest.json").write_text(json.dumps(OLD_MANIFEST))

    manifest = read_manifest(slot_dir)
    stack = manifest.metrics.summary.validation[STACK]
    assert stack.mean == OLD_FIGURES["mean"] and math.isnan(stack.sharpe) and stack.recent is None
    assert manifest.metrics.validation["bmc"].summary[STACK].eras == 40
    assert manifest.data.version == "v5.2" and manifest.data.training_rows is None
    assert manifest.device.choice == "gpu" and manifest.device.probe == {}
    assert [(d.fold, d.from_, d.to) for d in manifest.device.downgrades] == [(1, "gpu", "cpu")]
    # rewritten (as the model-upload step does), what it stored comes back as it was
    stored = json.loads(write_manifest(slot_dir, manifest).read_text())
    old_device = dict(OLD_MANIFEST["device"])
    old_device["choice"] = old_device.pop("tier")  # the one key renamed: "tier" is now the device choice
    assert stored["data"] == OLD_MANIFEST["data"] and stored["device"] == old_device
    assert stored["metrics"]["summary"]["validation"][STACK] == OLD_FIGURES | {"sharpe": None}
    assert stored["metrics"]["validation"]["bmc"]["summary"] == {STACK: OLD_FIGURES}

    [row] = slot_history(tmp_path, OLD_MANIFEST["run_id"], "main", previous=10).rows
    assert row.corr.mean == OLD_FIGURES["mean"] and row.contributions["MMC"].not_computed


def _evaluation(seed: int) -> Evaluation:
    rng = pd.Series(range(30), index=range(600, 630)).sample(frac=1.0, random_state=seed).to_numpy()
    scores = pd.DataFrame({"target": rng / 1000 - 0.01, STACK: rng / 900 - 0.01}, index=range(600, 630))
    metric = MetricScores(
        against="v52_lgbm_ender20", summary=summarize_all(scores / 3), per_era=era_rows(scores)
    )
    return Evaluation(
        stacker=Stacker(kind="mean", columns=["target"], weights=[1.0]),
        summary={"oof": summarize_all(scores), "validation": summarize_all(scores)},
        per_era={"oof": [], "validation": era_rows(scores)},
        per_fold=[],
        validation_eras=list(scores.index),
        validation_metrics={
            "mmc": MetricScores(against="meta model", not_computed="no meta_model.parquet"),
            "bmc": metric,
            "fnc": metric.model_copy(update={"against": None}),
        },
    )


def test_a_manifest_stores_an_evaluation_as_json_and_reads_it_back_equal(tmp_path: Path) -> None:
    evaluation = _evaluation(seed=1)
    metrics = SlotMetrics.of(evaluation)
    stored = json.loads(metrics.model_dump_json())
    figures = stored["summary"]["validation"][STACK]  # flat, as Numerai's research tooling names them
    assert list(figures) == ["mean", "std", "sharpe", "max_drawdown", "eras", *(f"{k}_last200" for k in
                             ("mean", "std", "sharpe", "max_drawdown", "eras"))]  # fmt: skip
    assert "per_era" not in stored["validation"]["bmc"]  # the per-era rows live in the artifacts
    assert SlotMetrics.model_validate(stored) == metrics


def _write(work_dir: Path, run_id: str, evaluation: Evaluation) -> None:
    manifest = Manifest.model_validate(
        OLD_MANIFEST | {"run_id": run_id, "metrics": SlotMetrics.of(evaluation).model_dump()}
    )
    write_manifest(work_dir / run_id / "slots" / "main", manifest)


def test_every_renderer_takes_its_lead_columns_from_the_one_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lead metric named once beside MMC and BMC shows in the CLI, the run summary, the run
    history and the chart, and summary and history show the same figures for it."""
    monkeypatch.setitem(LEAD_METRICS, "fnc", "FNC")
    evaluations = {"main": _evaluation(seed=2)}
    older, newer = "20261120T160000Z-aaaaaa", "20261127T160000Z-bbbbbb"
    _write(tmp_path, older, _evaluation(seed=3))
    _write(tmp_path, newer, evaluations["main"])

    summary = lead_table(evaluations)
    assert summary[0].split(" | ")[-3:] == ["MMC", "BMC", "FNC |"]
    history = history_markdown([slot_history(tmp_path, newer, "main", previous=10)], tmp_path).splitlines()
    header = next(i for i, line in enumerate(history) if line.startswith("| run |"))
    assert history[header].split(" | ")[-3:] == ["MMC", "BMC", "FNC |"]

    summary_cells = summary[2].strip("| ").split(" | ")[-3:]
    history_cells = history[header + 2].strip("| ").split(" | ")[-3:]
    fnc = evaluations["main"].validation_metrics["fnc"].summary[STACK]
    assert summary_cells[0] == history_cells[0] == "not computed"
    for summary_cell, history_cell in zip(summary_cells[1:], history_cells[1:], strict=True):
        assert summary_cell.split(" (")[0] == history_cell.split(" (")[0] == f"{fnc.mean:.4f}"

    lines = validation_lines(
        evaluations["main"].summary.validation[STACK], evaluations["main"].validation_metrics
    )
    assert [line.split(":")[0] for line in lines] == [
        f"validation {m}" for m in ("CORR", "MMC", "BMC", "FNC")
    ]
    titles = [ax.get_title(loc="left") for ax in validation_figure(evaluations["main"], "t").axes]
    assert titles[2:] == ["cumulative BMC (v52_lgbm_ender20)", "cumulative FNC"]
