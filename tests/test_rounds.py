"""Waiting for a late round: what the user is told while waiting and when giving up."""

from datetime import UTC, datetime, timedelta

from numerflow.numerai.client import RoundInfo
from numerflow.numerai.rounds import round_state, wait_for_open_round

NOW = datetime.now(UTC)
LATE = RoundInfo(1002, NOW + timedelta(minutes=5), NOW + timedelta(minutes=65))
OPEN = RoundInfo(1002, NOW - timedelta(minutes=1), NOW + timedelta(minutes=59))
CLOSED = RoundInfo(1001, NOW - timedelta(hours=2), NOW - timedelta(hours=1))


def test_checks_until_the_round_opens_saying_so_each_time() -> None:
    answers, lines, sleeps = iter([None, LATE, OPEN]), [], []
    found = wait_for_open_round(lambda: next(answers), 30, 7, lines.append, sleeps.append)
    assert found == OPEN and sleeps == [7, 7]
    assert lines[0].startswith("no round is listed (between rounds); checking again in 7 s, until ")
    assert lines[1].startswith("round 1002 opens at ")


def test_gives_up_at_the_deadline_with_a_line() -> None:
    lines: list[str] = []
    found = wait_for_open_round(lambda: CLOSED, 0.005, 0.1, lines.append)
    assert found == CLOSED
    assert lines[-1] == f"gave up waiting for an open round after 0.005 min: {round_state(CLOSED)}"
    assert "closed at" in lines[-1] and len(lines) >= 2


def test_no_wait_says_nothing() -> None:
    lines: list[str] = []
    assert wait_for_open_round(lambda: CLOSED, 0, 30, lines.append) == CLOSED and lines == []
