"""Progress of long work (downloads, binning, training) as plain callbacks.

The core reports `(done, total)` to a `ProgressReport` it is handed and knows nothing of where
that goes: the shell turns reports into Prefect progress artifacts and, when the CLI runs a flow
in a terminal, into bars on a `ProgressDisplay`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, Protocol

ProgressReport = Callable[[int, int], None]  # (done, total); total 0 while it is unknown
FileProgress = Callable[[str], ProgressReport | None]  # the report for one named file, if any
Unit = Literal["bytes", "rows", "trees", "models"]


class ProgressDisplay(Protocol):
    """Somewhere to show bars: one bar per `reporter`, shown from its first report."""

    def reporter(self, label: str, unit: Unit, transient: bool = False) -> ProgressReport:
        """A report that moves the bar `label`; a transient bar disappears once complete."""
        ...


class Throttled:
    """Pass on the first report, then at most one every `min_interval_s`, and always the last
    (done >= total): for sinks that cost a network call, like Prefect artifacts."""

    def __init__(
        self, report: ProgressReport, min_interval_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.report, self.min_interval_s, self.clock = report, min_interval_s, clock
        self._last: float | None = None

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        if done < total and self._last is not None and now - self._last < self.min_interval_s:
            return
        self._last = now
        self.report(done, total)


def fan_out(first: ProgressReport, *more: ProgressReport | None) -> ProgressReport:
    """One report that calls `first` and each of `more` that is not None."""
    reports = [first, *(report for report in more if report is not None)]
    if len(reports) == 1:
        return first

    def report(done: int, total: int) -> None:
        for each in reports:
            each(done, total)

    return report


def eta_seconds(done: int, total: int, elapsed_s: float) -> float | None:
    """Seconds left if the remaining units take as long as the finished ones (None before any)."""
    if done <= 0:
        return None
    return elapsed_s / done * (total - done)


def percent(done: int, total: int) -> float:
    return 100.0 * done / total if total else 100.0
