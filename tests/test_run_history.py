"""The run-over-run history from slot manifests (no Prefect server: pure functions on files)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from numerflow.report.history import history_markdown, run_history_markdown
from numerflow.runs.history import slot_history
from numerflow.runs.manifest import Manifest, new_run_id, write_manifest

SLOT = "main"
START = datetime(2026, 11, 1, 16, tzinfo=UTC)


def _figures(mean: float) -> dict[str, float | int]:
    return {"mean": mean, "std": 0.01, "sharpe": mean / 0.01, "max_drawdown": 0.02, "eras": 40}


def _write_run(
    work_dir: Path, week: int, corr: float, params: dict[str, Any], mmc: dict[str, Any] | None = None
) -> str:
    """A weekly run `week` weeks after START with one slot scored at validation CORR `corr`."""
    run_id = new_run_id(START + timedelta(weeks=week))
    validation = {"bmc": {"against": "v52_lgbm_ender20", "summary": {"stack": _figures(corr / 2)}}}
    manifest = Manifest(
        run_id=run_id,
        slot=SLOT,
        created_at=f"{START + timedelta(weeks=week):%Y-%m-%dT%H:%M:%S}",
        finished_at=f"{START + timedelta(weeks=week, hours=1):%Y-%m-%dT%H:%M:%S}",
        code_version="test",
        data={"version": "v5.2"},
        features=["feature_a"],
        targets=["target", "target_cyrusd_20"],
        params=params,
        device={"choice": "cpu", "reason": "no GPU", "device_type": "cpu"},
        folds=[],
        metrics={
            "summary": {"validation": {"target": _figures(corr - 0.001), "stack": _figures(corr)}},
            "validation": validation | ({"mmc": mmc} if mmc is not None else {}),
        },
    )
    write_manifest(work_dir / run_id / "slots" / SLOT, manifest)
    return run_id


BASE = {"learning_rate": 0.01, "max_depth": 5, "seed": 42}
MMC = {"against": "the meta model", "summary": {"stack": _figures(0.004)}}


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, list[str], list[float]]:
    """Three weekly runs, oldest first: the second keeps the first's parameters, the third changes
    the learning rate."""
    corrs = [0.020, 0.030, 0.025]
    params = [BASE, dict(BASE), BASE | {"learning_rate": 0.02}]
    ids = [_write_run(tmp_path, week, corrs[week], params[week], MMC) for week in range(3)]
    (tmp_path / "bins").mkdir()  # other folders of the work dir are not runs
    return tmp_path, ids, corrs


def test_rows_newest_first_with_hash_changes_and_deltas(runs: tuple[Path, list[str], list[float]]) -> None:
    work_dir, ids, corrs = runs
    history = slot_history(work_dir, ids[-1], SLOT, previous=10)

    assert [row.run_id for row in history.rows] == ids[::-1] and history.skipped == []
    newest, middle, oldest = history.rows
    assert newest.params_hash != middle.params_hash and middle.params_hash == oldest.params_hash
    assert newest.params_changed == {"learning_rate": (0.01, 0.02)} and middle.params_changed == {}
    assert oldest.params_changed is None and oldest.corr_delta is None
    assert newest.corr_delta == pytest.approx(corrs[2] - corrs[1]) and newest.corr_delta < 0
    assert middle.corr_delta == pytest.approx(corrs[1] - corrs[0]) and middle.corr_delta > 0
    assert newest.corr.eras == 40 and newest.data_version == "v5.2"

    table = history_markdown([history], work_dir).splitlines()
    [newest_line] = [line for line in table if ids[2] in line]
    [middle_line] = [line for line in table if ids[1] in line]
    assert [line for line in table if "(this run)" in line] == [newest_line]
    assert f"▼ {corrs[2] - corrs[1]:+.4f}" in newest_line
    assert "learning_rate 0.01 → 0.02" in newest_line
    assert f"▲ {corrs[1] - corrs[0]:+.4f}" in middle_line and "| none |" in middle_line
    assert f"{MMC['summary']['stack']['mean']:.4f} (sharpe" in newest_line


def test_history_stops_at_this_run_and_at_n(runs: tuple[Path, list[str], list[float]]) -> None:
    work_dir, ids, corrs = runs
    # a run started later (another run still going) is not part of an earlier run's history
    assert [r.run_id for r in slot_history(work_dir, ids[1], SLOT, previous=10).rows] == ids[1::-1]

    [newest, shown] = slot_history(work_dir, ids[2], SLOT, previous=1).rows
    assert [newest.run_id, shown.run_id] == [ids[2], ids[1]]
    assert shown.corr_delta == pytest.approx(corrs[1] - corrs[0])  # the run below the table is read


def test_a_corrupt_manifest_is_skipped_with_its_reason(
    runs: tuple[Path, list[str], list[float]], caplog: pytest.LogCaptureFixture
) -> None:
    work_dir, ids, corrs = runs
    truncated = work_dir / ids[1] / "slots" / SLOT / "manifest.json"
    truncated.write_text(truncated.read_text()[:200])
    unscored = _write_run(work_dir, -1, 0.01, BASE)  # the oldest: scored without a stack
    path = work_dir / unscored / "slots" / SLOT / "manifest.json"
    path.write_text(path.read_text().replace('"stack"', '"other"'))

    with caplog.at_level(logging.WARNING, logger="numerflow.runs"):
        history = slot_history(work_dir, ids[2], SLOT, previous=10)

    assert [r.run_id for r in history.rows] == [ids[2], ids[0]]
    assert history.rows[0].corr_delta == pytest.approx(corrs[2] - corrs[0])
    reasons = {s.path: s.reason for s in history.skipped}
    assert set(reasons) == {truncated, path}
    assert "not a readable manifest" in reasons[truncated]
    assert "no validation CORR of the stack" in reasons[path]
    assert str(truncated) in caplog.text
    text = history_markdown([history], work_dir)
    assert f"- skipped `{truncated}`: not a readable manifest" in text


def test_mmc_absent_or_not_computed_shows_not_computed(tmp_path: Path) -> None:
    first = _write_run(tmp_path, 0, 0.02, BASE)  # no MMC record at all (an older manifest)
    second = _write_run(tmp_path, 1, 0.03, BASE, {"not_computed": "no meta_model.parquet for v5.2"})

    rows = slot_history(tmp_path, second, SLOT, previous=10).rows
    assert rows[0].contributions["MMC"].not_computed == "no meta_model.parquet for v5.2"
    assert rows[1].contributions["MMC"].not_computed and rows[1].contributions["MMC"].mean is None
    assert rows[0].contributions["BMC"].mean == pytest.approx(0.015)
    text = run_history_markdown(tmp_path, second, [SLOT], 10)
    [line] = [line for line in text.splitlines() if first in line]
    assert line.endswith("| not computed | 0.0100 (sharpe 1.00) |")


def test_a_first_run_says_so_in_one_line(tmp_path: Path) -> None:
    only = _write_run(tmp_path, 0, 0.02, BASE)
    text = run_history_markdown(tmp_path, only, [SLOT, "never_trained"], 10)
    assert text == f"No previous weekly runs in `{tmp_path}` to compare this run with.\n"


def test_runs_recorded_under_aliases_compare_by_canonical_name(tmp_path: Path) -> None:
    """Runs before numerflow wrote LightGBM's canonical names recorded n_estimators and
    colsample_bytree; the same values under num_iterations and feature_fraction are no change."""
    old = _write_run(tmp_path, 0, 0.02, BASE | {"n_estimators": 2000, "colsample_bytree": 0.1})
    new = _write_run(tmp_path, 1, 0.02, BASE | {"num_iterations": 2000, "feature_fraction": 0.2})
    newest, oldest = slot_history(tmp_path, new, SLOT, previous=10).rows
    assert oldest.run_id == old
    assert newest.params_changed == {"feature_fraction": (0.1, 0.2)}


def test_each_run_shows_the_live_corr_of_the_rounds_it_submitted(
    runs: tuple[Path, list[str], list[float]],
) -> None:
    from numerflow.live.fetch import fetch_scores
    from numerflow.numerai import ledger

    work_dir, ids, _ = runs
    finals = {100: 0.02, 101: 0.04, 102: None, 103: -0.01}  # round -> resolved live CORR; None: pending
    submitted_by = {100: ids[0], 101: ids[0], 102: ids[0], 103: ids[1]}
    for number, run_id in submitted_by.items():
        ledger.append(work_dir, round=number, model=SLOT, trained_run_id=run_id, submission_id="s",
                      sha256="0", rows=1)  # fmt: skip
    answers = [
        {"roundNumber": n, "displayName": "v2_corr20", "day": 20 if v is not None else 3,
         "value": v if v is not None else 0.9, "resolved": v is not None}
        for n, v in finals.items()
    ]  # fmt: skip

    class Numerai:
        def submission_scores(self, model_id: str, last_n_rounds: int) -> list[dict]:
            return answers

    fetch_scores(Numerai(), work_dir, SLOT, "id", 10)
    table = history_markdown([slot_history(work_dir, ids[-1], SLOT, previous=10)], work_dir).splitlines()
    assert "| live CORR |" in table[next(i for i, line in enumerate(table) if line.startswith("| run |"))]
    [oldest] = [line for line in table if line.startswith(f"| {ids[0]} ")]
    [middle] = [line for line in table if line.startswith(f"| {ids[1]} ")]
    [newest] = [line for line in table if ids[2] in line]
    assert f"| {(0.02 + 0.04) / 2:+.4f} (2 resolved, 1 pending) |" in oldest
    assert f"| {-0.01:+.4f} (1 resolved) |" in middle
    assert "| 40 | - |" in newest  # submitted no round yet
