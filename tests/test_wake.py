"""`numerflow wake-times`: a few minutes before each scheduled run, by weekday, in UTC; what
numerflow-services.ps1 -Install makes the wake task's triggers from."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from typer.testing import CliRunner

from cli.main import app
from numerflow.config.models import DeploymentsConfig, RoundScheduleConfig, ScheduleConfig
from numerflow.ops.wake import WAKE_MINUTES_BEFORE, WakeTime, wake_times

DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]  # cron's 0..6


def _expected(cron: str) -> tuple[str, list[str]]:
    """A `M H * * D-D` cron's start, WAKE_MINUTES_BEFORE earlier, read from the cron itself."""
    minute, hour, _, _, days = cron.split()
    first, last = (int(day) for day in days.split("-")) if "-" in days else (int(days), int(days))
    at = datetime(2024, 1, 1, int(hour), int(minute)) - timedelta(minutes=WAKE_MINUTES_BEFORE)
    assert at.day == 1, "the shipped schedules wake on the day of the run"
    return f"{at:%H:%M}", DAYS[first : last + 1]


def test_the_shipped_schedules_wake_the_pc_before_each_run(config_dir: Path) -> None:
    shipped = yaml.safe_load((config_dir / "deployments.yaml").read_text(encoding="utf-8"))
    expected = dict(_expected(shipped[name]["cron"]) for name in ("round", "weekly"))
    result = CliRunner().invoke(app, ["wake-times", "--json", "--config-dir", str(config_dir)])
    assert result.exit_code == 0, result.output
    printed = {time["at"]: time["days"] for time in json.loads(result.output)}
    assert {at: sorted(days) for at, days in printed.items()} == {
        at: sorted(days) for at, days in expected.items()
    }


def test_a_wake_before_midnight_falls_on_the_day_before() -> None:
    deployments = DeploymentsConfig(
        weekly=ScheduleConfig(cron="5 0 * * 1"),  # Monday 00:05 UTC
        round=RoundScheduleConfig(cron="0 12 * * 3", active=False),  # paused: no wake for it
    )
    times = wake_times(deployments, datetime(2026, 12, 2, tzinfo=UTC))
    before = datetime(2026, 12, 7, 0, 5) - timedelta(minutes=WAKE_MINUTES_BEFORE)  # a Monday's run
    assert times == [WakeTime(at=f"{before:%H:%M}", days=[f"{before:%A}"])]
