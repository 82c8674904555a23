"""Progress reports of long work: binning batches and training trees reach 100 % in order;
throttling for the Prefect artifacts; the ETA."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

import numerflow.data.rows
from numerflow.config.models import LightGBMParams
from numerflow.progress import Throttled, eta_seconds, fan_out, percent
from numerflow.train.fit import train_booster
from numerflow.train.progress import TreeProgress
from tests.conftest import prepare

PARAMS = LightGBMParams(n_estimators=15, learning_rate=0.1, colsample_bytree=0.5, num_threads=2)
FEATURES = [f"feature_{i:04d}" for i in range(8)]


def _recorder() -> tuple[list[tuple[int, int]], object]:
    calls: list[tuple[int, int]] = []
    return calls, lambda done, total: calls.append((done, total))


def _climbs_to_the_end(calls: list[tuple[int, int]], total: int) -> bool:
    done = [d for d, _ in calls]
    return done == sorted(done) and calls[-1] == (total, total)


@pytest.mark.parametrize("loader", ["stream", "arrow"])
def test_binning_reports_rows_up_to_all_of_them(
    loader: str, version_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(numerflow.data.rows, "BATCH_BYTES", 4 * len(FEATURES) * 1000)  # 1,000-row batches
    calls, report = _recorder()
    prepared = prepare(version_dir, FEATURES, ["target"], PARAMS, tmp_path, loader=loader, on_progress=report)
    assert _climbs_to_the_end(calls, prepared.rows)
    if loader == "stream":  # every batch LightGBM pulls moves the bar
        assert len(calls) == 1 + -(-prepared.rows // 1000)
        assert calls[0] == (0, prepared.rows)
    else:  # one call into LightGBM: an unknown total until it returns
        assert calls == [(0, 0), (prepared.rows, prepared.rows)]

    again, report = _recorder()
    prepare(version_dir, FEATURES, ["target"], PARAMS, tmp_path, loader=loader, on_progress=report)
    assert again == []  # the bins came from the cache: nothing was binned


def test_training_reports_every_tree_up_to_the_last(version_dir: Path, tmp_path: Path) -> None:
    prepared = prepare(version_dir, FEATURES, ["target"], PARAMS, tmp_path)
    label = pd.read_parquet(prepared.meta_path)["target"].to_numpy(np.float32)
    calls, report = _recorder()
    train_booster(prepared, np.arange(prepared.rows), label, PARAMS, seed=1, on_progress=report)
    assert calls == [(done, PARAMS.num_iterations) for done in range(1, PARAMS.num_iterations + 1)]


def test_throttled_reports_the_first_tree_then_a_few_then_the_last() -> None:
    now = [0.0]
    calls, report = _recorder()

    def advance(env: object) -> None:  # each tree takes 1 s on this clock
        now[0] += 1.0

    advance.order = 0  # type: ignore[attr-defined]
    progress = TreeProgress(Throttled(report, min_interval_s=10.0, clock=lambda: now[0]))
    rng = np.random.default_rng(0)
    data = lgb.Dataset(rng.normal(size=(200, 5)), label=rng.normal(size=200))
    lgb.train({"verbose": -1, "num_leaves": 4}, data, num_boost_round=35, callbacks=[advance, progress])
    assert calls == [(1, 35), (11, 35), (21, 35), (31, 35), (35, 35)]


def test_fan_out_calls_every_report_given() -> None:
    first, one = _recorder()
    second, two = _recorder()
    assert fan_out(one) is one and fan_out(one, None) is one
    fan_out(one, None, two)(3, 4)
    assert first == [(3, 4)] and second == [(3, 4)]


def test_eta_and_percent() -> None:
    assert eta_seconds(0, 8, 5.0) is None
    assert eta_seconds(2, 8, 60.0) == 180.0
    assert percent(3, 12) == 25.0 and percent(0, 0) == 100.0
