"""Waiting for a round that opens late, with a line to the user at every check and at the end."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from numerflow.numerai.client import RoundInfo


def wait_for_open_round(
    check: Callable[[], RoundInfo | None],
    minutes: float,
    poll_seconds: float,
    say: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> RoundInfo | None:
    """The current round from `check`, asked again every `poll_seconds` for up to `minutes`
    until it is open; the last answer when it never opened."""
    deadline = time.monotonic() + minutes * 60
    until = datetime.now(UTC) + timedelta(minutes=minutes)
    while True:
        info = check()
        if info is not None and info.is_open():
            return info
        if time.monotonic() + poll_seconds > deadline:
            if minutes > 0:
                say(f"gave up waiting for an open round after {minutes:g} min: {round_state(info)}")
            return info
        say(f"{round_state(info)}; checking again in {poll_seconds:g} s, until {until:%H:%M:%S} UTC")
        sleep(poll_seconds)


def round_state(info: RoundInfo | None, now: datetime | None = None) -> str:
    """Why no round is open, in words."""
    now = now or datetime.now(UTC)
    if info is None:
        return "no round is listed (between rounds)"
    if now < info.open_time:
        return f"round {info.number} opens at {info.open_time:%Y-%m-%d %H:%M:%S} UTC"
    return f"round {info.number} closed at {info.close_time:%Y-%m-%d %H:%M} UTC"
