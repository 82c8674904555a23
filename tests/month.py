"""A simulated month of Numerai rounds against the fake API, one fault per round, each round
triggered as the scheduler would (once), plus what a user or a second worker adds (a re-run,
a concurrent run, a run killed mid-upload). It tallies what Numerai ends up holding:

- reachable rounds submitted: rounds Numerai could serve that hold a submission;
- double uploads: rounds holding more than one submission for the model;
- silent misses: rounds with no submission whose triggers all ended without a loud sign
  (a failed run, a non-zero exit, or a "no round is open" message).

The rounds played by `numerflow submit` processes (two at once, a late round) are where the suite
checks those commands end to end: what they print and what Numerai ends up holding.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from numerflow.submit.outcome import SubmissionOutcome
from tests.fake_numerai import FakeNumerai

FIRST_ROUND = 1100
LATE_S, POLL_S = 5, 1  # the late round opens LATE_S after the command first asks; it checks each POLL_S


@dataclass
class Trigger:
    loud: bool
    detail: str
    output: str = ""  # a command's whole output


@dataclass
class Month:
    """What a round's script can do: set faults on `fake`, run the flow, run the command."""

    fake: FakeNumerai
    run_flow: Callable[..., object]  # submit_flow(return_state=True, ...) with the project's overrides
    run_command: Callable[..., subprocess.Popen]  # `numerflow submit ...` as a process
    bad_credentials: dict[str, object]  # overrides naming a block with swapped keys
    lines: list[str] = field(default_factory=list)

    def flow(self, **parameters: object) -> Trigger:
        state = self.run_flow(**parameters)
        if state.is_failed():
            return Trigger(True, f"failed: {state.message}")
        outcome = state.result()
        assert isinstance(outcome, SubmissionOutcome)
        loud = outcome.status in ("no-open-round", "upload-failed")
        return Trigger(loud, f"{outcome.status} {[u.status for u in outcome.uploads]} {outcome.message}")

    def commands(self, count: int, *args: str) -> list[Trigger]:
        processes = [self.run_command(*args) for _ in range(count)]
        return [self._finished(p) for p in processes]

    def killed_mid_create(self) -> Trigger:
        """A `numerflow submit` killed after Numerai kept its create, before the answer came."""
        before = len(self.fake.submissions)
        self.fake.faults.hang_seconds["create_submission"] = 60
        process = self.run_command("--set", "training.numerai.read_timeout_s=120")
        try:
            deadline = time.monotonic() + 240
            while len(self.fake.submissions) == before and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            psutil.Process(process.pid).kill()  # SIGKILL here, TerminateProcess on Windows
            process.communicate()
            self.fake.faults.hang_seconds.clear()
        return Trigger(True, "killed (SIGKILL) mid-create")

    def _finished(self, process: subprocess.Popen) -> Trigger:
        output, _ = process.communicate(timeout=300)
        loud = process.returncode != 0 or "no submission:" in output
        return Trigger(loud, f"exit {process.returncode}: {output.strip().splitlines()[-1]}", output)


def _statuses(trigger: Trigger) -> list[str]:
    """The upload statuses a `numerflow submit` printed, one per model."""
    return [line.split()[1] for line in trigger.output.splitlines() if "  my_model: " in line]


def clear_later(faults: dict, seconds: float) -> None:
    """The fault passes after `seconds` (a transient outage)."""
    threading.Timer(seconds, faults.clear).start()


def _plain(m: Month) -> list[Trigger]:
    return [m.flow()]


def _graphql_5xx(m: Month) -> list[Trigger]:
    m.fake.fail_next("rounds", 503, 502, 500)
    return [m.flow()]


def _graphql_hang(m: Month) -> list[Trigger]:
    m.fake.faults.hang_seconds["rounds"] = 7  # past the 5 s read timeout
    clear_later(m.fake.faults.hang_seconds, 3)
    return [m.flow()]


def _truncated_live(m: Month) -> list[Trigger]:
    m.fake.faults.truncate_next["v5.2/live.parquet"] = 2
    return [m.flow()]


def _stalled_live(m: Month) -> list[Trigger]:
    m.fake.faults.hang_seconds["get"] = 7
    clear_later(m.fake.faults.hang_seconds, 3)
    return [m.flow()]


def _put_dropped(m: Month) -> list[Trigger]:
    m.fake.faults.drop_next["put"] = 1
    return [m.flow()]


def _put_5xx(m: Month) -> list[Trigger]:
    m.fake.fail_next("put", 503, 503)
    return [m.flow()]


def _create_answer_lost(m: Month) -> list[Trigger]:
    m.fake.faults.lose_answer_next["create_submission"] = 1
    return [m.flow()]


def _create_5xx_after_effect(m: Month) -> list[Trigger]:
    m.fake.fail_next("create_submission", 502)
    return [m.flow()]


def _killed_and_retriggered(m: Month) -> list[Trigger]:
    return [m.killed_mid_create(), m.flow()]


def _two_workers_at_once(m: Month) -> list[Trigger]:
    m.fake.faults.hang_seconds["create_submission"] = 2  # a slow create: a wide race window
    try:
        triggers = m.commands(2)
    finally:
        m.fake.faults.hang_seconds.clear()
    # Both commands succeed, and each says what it did: one uploaded, the other skipped.
    assert sorted(s for t in triggers for s in _statuses(t)) == ["skipped", "uploaded"], triggers
    assert not any(t.loud for t in triggers), triggers
    return triggers


def _late_round(m: Month) -> list[Trigger]:
    m.fake.opens_in = LATE_S
    number = m.fake.round_number
    [trigger] = m.commands(1, "--wait-minutes", "1", "--set", f"deployments.round.poll_seconds={POLL_S}")
    # The command said it was waiting, and how often it checks, then uploaded.
    assert f"round {number} opens at" in trigger.output, trigger.output
    assert f"checking again in {POLL_S} s" in trigger.output and _statuses(trigger) == ["uploaded"]
    return [trigger]


def _rejected_keys(m: Month) -> list[Trigger]:
    return [m.flow(overrides=m.bad_credentials)]


def _closed_round(m: Month) -> list[Trigger]:
    m.fake.round_open = False
    try:
        return [m.flow()]
    finally:
        m.fake.round_open = True


def _upload_url_5xx(m: Month) -> list[Trigger]:
    m.fake.fail_next("submission_upload_auth", 503, 503)
    return [m.flow()]


def _create_rate_limited(m: Month) -> list[Trigger]:
    m.fake.fail_next("create_submission", 429)
    return [m.flow()]


def _models_5xx(m: Month) -> list[Trigger]:
    m.fake.fail_next("account", 500, 502)
    return [m.flow()]


def _dataset_query_dropped(m: Month) -> list[Trigger]:
    m.fake.faults.drop_next["dataset"] = 1
    return [m.flow()]


def _manual_rerun(m: Month) -> list[Trigger]:
    return [m.flow(), m.flow()]


# (fault, can Numerai be reached this round, script)
SCHEDULE: list[tuple[str, bool, Callable[[Month], list[Trigger]]]] = [
    ("none", True, _plain),
    ("GraphQL 5xx burst", True, _graphql_5xx),
    ("GraphQL hang past the timeout", True, _graphql_hang),
    ("truncated live download x2", True, _truncated_live),
    ("stalled live download", True, _stalled_live),
    ("dropped upload (PUT) connection", True, _put_dropped),
    ("PUT 503 twice", True, _put_5xx),
    ("create answer lost (dropped after it took effect)", True, _create_answer_lost),
    ("create 502 after it took effect", True, _create_5xx_after_effect),
    ("submit SIGKILLed mid-create, re-triggered", True, _killed_and_retriggered),
    ("two workers trigger at once", True, _two_workers_at_once),
    (f"round opens {LATE_S} s late (numerflow submit --wait-minutes 1)", True, _late_round),
    ("rejected API keys", False, _rejected_keys),
    ("round closed", False, _closed_round),
    ("upload URL query 5xx twice", True, _upload_url_5xx),
    ("create 429 after it took effect", True, _create_rate_limited),
    ("model list 5xx twice", True, _models_5xx),
    ("dataset URL query dropped", True, _dataset_query_dropped),
    ("manual re-run after the scheduled run", True, _manual_rerun),
    ("none", True, _plain),
]


def run_month(month: Month) -> dict[str, int]:
    """Play the schedule, print a line per round and the tally; return the tally."""
    tally = {"reachable": 0, "reachable submitted": 0, "double uploads": 0, "silent misses": 0}
    for offset, (fault, reachable, script) in enumerate(SCHEDULE):
        number = FIRST_ROUND + offset
        month.fake.round_number, month.fake.opens_at = number, None
        triggers = script(month)
        held = len(month.fake.submissions_for(number))
        tally["reachable"] += reachable
        tally["reachable submitted"] += reachable and held > 0
        tally["double uploads"] += held > 1
        tally["silent misses"] += held == 0 and not any(t.loud for t in triggers)
        month.lines.append(
            f"round {number} [{fault}]: {held} stored; " + " | ".join(t.detail for t in triggers)
        )
    month.lines.append(
        f"reachable rounds submitted: {tally['reachable submitted']}/{tally['reachable']}, "
        f"double uploads: {tally['double uploads']}, silent misses: {tally['silent misses']}"
    )
    print("\n".join(month.lines))
    return tally
