"""When a sleeping Windows PC must wake: a few minutes before each scheduled start.

Task Scheduler can wake a PC from sleep (not from shut down) for a task with "wake the computer
to run this task". `numerflow-services.ps1 -Install` registers one such task with a weekly
trigger per time printed here: one week of both deployments' starts, moved earlier by
`WAKE_MINUTES_BEFORE`, in UTC (the script makes the triggers UTC too). A schedule in another
time zone is converted for the coming week; after a daylight-saving change, run -Install again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from numerflow.config.models import DeploymentsConfig
from numerflow.ops.schedule import next_runs

WAKE_MINUTES_BEFORE = 10  # long enough for the PC to resume and the worker to reconnect
WEEK = timedelta(days=7)


class WakeTime(BaseModel):
    at: str  # HH:MM, UTC
    days: list[str]  # English day names, as Task Scheduler's -DaysOfWeek takes them


def wake_times(
    deployments: DeploymentsConfig, now: datetime, minutes_before: int = WAKE_MINUTES_BEFORE
) -> list[WakeTime]:
    """One week of both deployments' starts, `minutes_before` earlier, grouped by time of day."""
    starts: list[datetime] = []
    for schedule in (deployments.round, deployments.weekly):
        for when in next_runs(schedule, now, count=7 * 24 * 60):  # every start in the week at most
            if when >= now + WEEK:
                break
            starts.append(when - timedelta(minutes=minutes_before))
    days_at: dict[str, set[int]] = {}
    for when in starts:
        days_at.setdefault(f"{when:%H:%M}", set()).add(when.weekday())
    return [
        WakeTime(at=at, days=[datetime(2024, 1, 1 + day, tzinfo=UTC).strftime("%A") for day in sorted(days)])
        for at, days in sorted(days_at.items())
    ]
