"""Where a run's progress shows besides the Prefect progress artifacts: the display the CLI
installs while it runs a flow in its own process on a terminal. A worker, a Dask worker, CI or
a log has none installed, so its reports go to the artifacts only.

The display is held for the whole process, not in a context variable: the flow's tasks report
from Prefect's worker threads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from numerflow.progress import ProgressDisplay, ProgressReport, Unit

# A 2,000-tree fold on full data trains for tens of minutes: four updates a minute show it
# moving without flooding the Prefect API.
ARTIFACT_INTERVAL_S = 15.0

_display: ProgressDisplay | None = None


@contextmanager
def shown_on(display: ProgressDisplay) -> Iterator[None]:
    """Show the progress of whatever runs in this process on `display` until the block ends."""
    global _display
    previous, _display = _display, display
    try:
        yield
    finally:
        _display = previous


def on_terminal(label: str, unit: Unit, transient: bool = False) -> ProgressReport | None:
    """A report that moves the bar `label` on the installed display; None when there is none."""
    return _display.reporter(label, unit, transient) if _display is not None else None
