"""Training progress: the LightGBM callback's throttling and the ETA."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

from numerflow.train.progress import TreeProgress, eta_seconds, percent


def test_a_real_training_reports_the_first_tree_then_throttled_then_the_last() -> None:
    now = [0.0]
    calls: list[tuple[int, int]] = []

    def report(done: int, total: int) -> None:
        calls.append((done, total))

    progress = TreeProgress(report, min_interval_s=10.0, clock=lambda: now[0])

    def advance(env: object) -> None:  # each tree takes 1 s on this clock
        now[0] += 1.0

    advance.order = 0  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    data = lgb.Dataset(rng.normal(size=(200, 5)), label=rng.normal(size=200))
    lgb.train({"verbose": -1, "num_leaves": 4}, data, num_boost_round=35, callbacks=[advance, progress])
    assert calls == [(1, 35), (11, 35), (21, 35), (31, 35), (35, 35)]


def test_eta_and_percent() -> None:
    assert eta_seconds(0, 8, 5.0) is None
    assert eta_seconds(2, 8, 60.0) == 180.0
    assert percent(3, 12) == 25.0 and percent(0, 0) == 100.0
