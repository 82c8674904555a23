"""Progress bars on the terminal while the CLI runs a flow in its own process.

Shown on stderr when it is a terminal (or when asked with --progress), never in a worker, CI
or a log. Prefect's console log lines keep printing, above the bars."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from prefect.logging.handlers import PrefectConsoleHandler
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

from numerflow.progress import ProgressReport, Unit
from tasks.progress import shown_on

# The time left comes from the pace since the bar started (rich keeps its last 1,000 updates),
# not from the last 30 s: a fold model on full data takes longer than that.
PACE_WINDOW_S = 24 * 3600.0


@contextmanager
def terminal_progress(wanted: bool | None) -> Iterator[None]:
    """Show the bars of whatever runs inside the block: when `wanted`, or (None) when stderr
    is a terminal."""
    if not (sys.stderr.isatty() if wanted is None else wanted):
        yield
        return
    display = TerminalProgress(Console(stderr=True, force_terminal=wanted or None))
    with display, shown_on(display):
        yield


class TerminalProgress:
    """A `ProgressDisplay` of rich bars: one per reporter, added at its first report."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            AmountColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            speed_estimate_period=PACE_WINDOW_S,
            redirect_stdout=sys.stdout.isatty(),  # what is printed to a piped stdout stays there
        )
        self._log_files: list[tuple[PrefectConsoleHandler, IO[str]]] = []

    def reporter(self, label: str, unit: Unit, transient: bool = False) -> ProgressReport:
        task: TaskID | None = None  # each reporter is used by one thread: no lock needed

        def report(done: int, total: int) -> None:
            nonlocal task
            visible = not (transient and 0 < total <= done)
            if task is None:  # a bar shows only for work that happens (a file not downloaded has none)
                task = self.progress.add_task(
                    label, total=total or None, completed=done, visible=visible, unit=unit
                )
            else:
                self.progress.update(task, completed=done, total=total or None, visible=visible)

        return report

    def __enter__(self) -> TerminalProgress:
        self.progress.start()
        console = self.progress.console
        for handler in _prefect_console_handlers():
            self._log_files.append((handler, handler.console.file))
            handler.console.file = LinesAbove(console)
        return self

    def __exit__(self, *exc: object) -> None:
        for handler, file in self._log_files:
            handler.console.file = file
        self._log_files.clear()
        self.progress.stop()


class AmountColumn(ProgressColumn):
    """Done and total in the bar's unit: bytes as kB/MB/GB, others as counts ('120/2,000 trees')."""

    _bytes = DownloadColumn()

    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=True))  # a narrow terminal shortens the bar

    def render(self, task: Task) -> Text:
        unit = task.fields["unit"]
        if unit == "bytes":
            return self._bytes.render(task)
        total = f"{int(task.total):,}" if task.total is not None else "?"
        return Text(f"{int(task.completed):,}/{total} {unit}", style="progress.download")


class LinesAbove(io.TextIOBase):
    """A file whose complete lines print above the live bars, colours kept. Prefect's console
    log handler writes into it while the bars show: its own console would write straight to
    the terminal and tear the bars (rich never redirects a console's own file)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._partial = ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self.console.print(Text.from_ansi(line))
        return len(text)

    def isatty(self) -> bool:  # Prefect's console colours its output only for a terminal
        return self.console.is_terminal


def _prefect_console_handlers() -> list[PrefectConsoleHandler]:
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    handlers = {
        id(handler): handler
        for logger in loggers
        if isinstance(logger, logging.Logger)
        for handler in logger.handlers
        if isinstance(handler, PrefectConsoleHandler)
    }
    return list(handlers.values())
