"""The CLI's progress bars: none when stderr is not a terminal (CliRunner, a log, CI), bars for
downloads, binning and training when asked, with Prefect's log lines printed above them.

The weekly flow is replaced by a stand-in that reports as the real tasks do, so these take
a second, not a training run (test_cli's demo checks a real run shows no bars off a terminal)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prefect.logging.handlers import PrefectConsoleHandler
from prefect.states import Failed
from typer.testing import CliRunner

import flows.weekly
from cli.main import app
from cli.progress import terminal_progress
from tasks.progress import on_terminal

runner = CliRunner()
BAR = "━"


def _weekly_stand_in(**_: object):
    """Reports progress the way the download, binning and fold tasks do, logs, and fails."""
    reports = {
        "download train.parquet": ("bytes", 3_000_000),
        "binning main": ("rows", 5_000),
        "fold models trained": ("models", 2),
    }
    for label, (unit, total) in reports.items():
        report = on_terminal(label, unit)
        for done in (0, total // 2, total) if report is not None else ():
            report(done, total)
    fold = on_terminal("target fold 0", "trees", transient=True)
    for done in (1_000, 2_000) if fold is not None else ():
        fold(done, 2_000)
    logging.getLogger("numerflow.test").warning("a log line from the run")
    return Failed(message="the stand-in stops here")


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flows.weekly, "weekly_flow", _weekly_stand_in)
    monkeypatch.delenv("NUMERFLOW_PROGRESS", raising=False)  # the tests set it themselves


def _run(config_dir: Path, *flags: str, env: dict[str, str] | None = None):
    return runner.invoke(app, ["run", "--config-dir", str(config_dir), *flags], env=env)


@pytest.mark.usefixtures("stand_in")
@pytest.mark.parametrize(
    ("flags", "env"), [((), None), (("--no-progress",), None), ((), {"NUMERFLOW_PROGRESS": "0"})]
)
def test_no_bars_when_stderr_is_not_a_terminal_or_when_turned_off(
    config_dir: Path, flags: tuple[str, ...], env: dict[str, str] | None
) -> None:
    result = _run(config_dir, *flags, env=env)
    assert result.exit_code == 1 and "the stand-in stops here" in result.output
    assert BAR not in result.output and "binning main" not in result.output


@pytest.mark.usefixtures("stand_in")
@pytest.mark.parametrize(("flags", "env"), [(("--progress",), None), ((), {"NUMERFLOW_PROGRESS": "1"})])
def test_bars_when_asked_with_log_lines_above_them(
    config_dir: Path, flags: tuple[str, ...], env: dict[str, str] | None
) -> None:
    result = _run(config_dir, *flags, env=env)
    assert result.exit_code == 1 and "the stand-in stops here" in result.output
    output = result.output
    assert "1,000/2,000 trees" in output  # a fold's bar while it trains
    # what stays on screen: rich redraws the bars in place, after erasing lines with ESC[2K
    last = output.rsplit("\x1b[2K", 1)[1]
    assert BAR in last
    assert "download train.parquet" in last and "3.0/3.0 MB" in last
    assert "binning main" in last and "5,000/5,000 rows" in last
    assert "fold models trained" in last and "2/2 models" in last
    assert "target fold 0" not in last  # gone once trained
    log_line = next(line for line in output.splitlines() if "a log line from the run" in line)
    assert BAR not in log_line  # printed whole, above the bars, not torn through them


def test_prefect_log_lines_go_back_to_their_own_stream_afterwards() -> None:
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]
    assert handlers, "Prefect's console handler is on the root logger"
    before = [h.console.file for h in handlers]
    with terminal_progress(True):
        assert all(h.console.file is not f for h, f in zip(handlers, before, strict=True))
        assert on_terminal("x", "rows") is not None
    assert [h.console.file for h in handlers] == before
    assert on_terminal("x", "rows") is None
