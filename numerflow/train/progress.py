"""Progress of long training: a LightGBM callback that reports trees done, a few times a minute,
and the ETA of a run of many folds."""

from __future__ import annotations

import time
from collections.abc import Callable

ProgressReport = Callable[[int, int], None]  # (trees done, trees in total)

# A 2,000-tree fold on full data trains for tens of minutes: four updates a minute show it
# moving without flooding the Prefect API.
DEFAULT_MIN_INTERVAL_S = 15.0


class TreeProgress:
    """LightGBM callback: `report(done, total)` after the first tree, then at most once every
    `min_interval_s`, and always after the last tree."""

    order = 100  # after LightGBM's own callbacks (early stopping may end training early)

    def __init__(
        self,
        report: ProgressReport,
        min_interval_s: float = DEFAULT_MIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.report, self.min_interval_s, self.clock = report, min_interval_s, clock
        self._last: float | None = None

    def __call__(self, env: object) -> None:
        done = env.iteration - env.begin_iteration + 1  # type: ignore[attr-defined]
        total = env.end_iteration - env.begin_iteration  # type: ignore[attr-defined]
        now = self.clock()
        if done < total and self._last is not None and now - self._last < self.min_interval_s:
            return
        self._last = now
        self.report(done, total)


def eta_seconds(done: int, total: int, elapsed_s: float) -> float | None:
    """Seconds left if the remaining units take as long as the finished ones (None before any)."""
    if done <= 0:
        return None
    return elapsed_s / done * (total - done)


def percent(done: int, total: int) -> float:
    return 100.0 * done / total if total else 100.0
