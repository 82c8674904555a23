"""Waiting for a late round: what the user is told while waiting and when giving up."""

from datetime import UTC, datetime, timedelta

from numerflow.numerai.client import RoundInfo
from numerflow.numerai.rounds import round_state, wait_for_open_round


def _round(number: int, opens_in_minutes: float) -> RoundInfo:
    """A round relative to now, made when the test runs (not when the module is collected, which
    can be minutes earlier in the full suite)."""
    opens = datetime.now(UTC) + timedelta(minutes=opens_in_minutes)
    return RoundInfo(number, opens, opens + timedelta(hours=1))


def test_checks_until_the_round_opens_saying_so_each_time() -> None:
    late, opened = _round(1002, 5), _round(1002, -1)
    answers, lines, sleeps = iter([None, late, opened]), [], []
    found = wait_for_open_round(lambda: next(answers), 30, 7, lines.append, sleeps.append)
    assert found == opened and sleeps == [7, 7]
    assert lines[0].startswith("no round is listed (between rounds); checking again in 7 s, until ")
    assert lines[1].startswith("round 1002 opens at ")


def test_gives_up_at_the_deadline_with_a_line() -> None:
    closed = _round(1001, -120)
    lines: list[str] = []
    found = wait_for_open_round(lambda: closed, 0.005, 0.1, lines.append)
    assert found == closed
    assert lines[-1] == f"gave up waiting for an open round after 0.005 min: {round_state(closed)}"
    assert "closed at" in lines[-1] and len(lines) >= 2


def test_no_wait_says_nothing() -> None:
    closed = _round(1001, -120)
    lines: list[str] = []
    assert wait_for_open_round(lambda: closed, 0, 30, lines.append) == closed and lines == []
