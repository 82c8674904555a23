"""When a deployment's schedule fires next, computed with the Prefect server's own cron engine,
so what `numerflow setup` and `numerflow status` print is what the scheduler will do."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from prefect.server.schemas.schedules import CronSchedule

from numerflow.config.models import ScheduleConfig


def next_runs(schedule: ScheduleConfig, after: datetime, count: int = 1) -> list[datetime]:
    """The next `count` start times after `after` (none when the schedule is paused), in UTC."""
    if not schedule.active:
        return []
    cron = CronSchedule(cron=schedule.cron, timezone=schedule.timezone)
    return [d.astimezone(UTC) for d in asyncio.run(cron.get_dates(n=count, start=after))]


def describe_start(when: datetime, now: datetime) -> str:
    """e.g. 'Sun 2026-11-29 16:00 UTC (in 3 d 2 h)'."""
    minutes = max(0, int((when - now).total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    delay = f"{days} d {hours} h" if days else f"{hours} h {minutes} min" if hours else f"{minutes} min"
    return f"{when.astimezone(UTC):%a %Y-%m-%d %H:%M} UTC (in {delay})"
