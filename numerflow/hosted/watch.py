"""Numerai's runs of the uploaded pickles: read, recorded, and one alert per incident.

Numerai runs a model's pickle every round on its own machines; numerapi has no call for the
outcome, so the status query Numerai documents (`NumeraiClient.pickle_statuses`) is read. A
round's run is the newest trigger that started after the round opened. It is an incident when
it failed, or has not succeeded `hosted_check_minutes` after the round opened; each incident is
recorded once in `hosted_runs.jsonl`, so repeated per-round runs alert once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dateutil import parser as dateparser
from pydantic import BaseModel

from numerflow.numerai.client import NumeraiClient, RoundInfo
from numerflow.numerai.ledger import append_line, read_lines
from numerflow.numerai.uploads import UploadOutcome

RUNS_NAME = "hosted_runs.jsonl"
FAILED = ("Failed", "Error")
SUCCEEDED = "Success"


class HostedRun(BaseModel):
    """What Numerai's run of a model's pickle for a round came to, when it was read."""

    checked_at: str
    round: int
    model: str
    pickle: str | None  # Numerai's file name of the model's active pickle
    trigger: str | None
    status: str | None  # Pending, Running, Validating, Success, Error, Failed; None: no run yet
    description: str = ""
    incident: bool = False  # alerted: failed, or no success in time


def hosted_runs(work_dir: Path) -> list[HostedRun]:
    return read_lines(work_dir / RUNS_NAME, HostedRun)


def round_trigger(upload: dict[str, Any] | None, opened: datetime) -> dict[str, Any] | None:
    """The newest of Numerai's runs of the pickle that started once the round was open."""
    if not upload:
        return None
    started = [t for t in upload.get("triggers") or [] if _started(t) and _started(t) >= opened]
    return max(started, key=_started) if started else None


def _started(trigger: dict[str, Any]) -> datetime | None:
    stamps = [dateparser.parse(s["insertedAt"]) for s in trigger.get("statuses") or [] if s.get("insertedAt")]
    return min(stamps) if stamps else None


def watch_round(
    client: NumeraiClient,
    work_dir: Path,
    models: list[str],
    info: RoundInfo,
    check_minutes: float,
    poll_seconds: float,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
) -> list[UploadOutcome]:
    """Wait for each model's run for the round to end (or the deadline) and record it. Returns a
    failed outcome per new incident (the flow alerts on it), a skipped one per incident already
    alerted, nothing for a run that succeeded."""
    deadline = info.open_time + timedelta(minutes=check_minutes)
    pending, outcomes = list(models), []
    while pending:
        statuses = client.pickle_statuses()
        late = clock() >= deadline
        for model in list(pending):
            run = _read(statuses.get(model), info, model, clock())
            ended = run.status in FAILED or run.status == SUCCEEDED
            if not ended and not late:
                continue
            pending.remove(model)
            outcome = _settle(work_dir, run, info, check_minutes)
            outcomes += [outcome] if outcome else []
        if pending:
            sleep(max(0.0, min(poll_seconds, (deadline - clock()).total_seconds())))
    return outcomes


def _read(upload: dict[str, Any] | None, info: RoundInfo, model: str, now: datetime) -> HostedRun:
    trigger = round_trigger(upload, info.open_time)
    last = (trigger or {}).get("statuses") or [{}]
    return HostedRun(
        checked_at=now.isoformat(timespec="seconds"),
        round=info.number,
        model=model,
        pickle=(upload or {}).get("filename"),
        trigger=(trigger or {}).get("id"),
        status=(trigger or {}).get("status"),
        description=max(last, key=lambda s: s.get("insertedAt") or "").get("description") or "",
    )


def _settle(work_dir: Path, run: HostedRun, info: RoundInfo, check_minutes: float) -> UploadOutcome | None:
    if run.status == SUCCEEDED:
        append_line(work_dir / RUNS_NAME, run)
        return None
    what = (
        f"Numerai's run of the pickle for round {info.number}: {run.status}"
        + (f" ({run.description})" if run.description else "")
        if run.status in FAILED
        else f"Numerai's run of the pickle for round {info.number} has not succeeded {check_minutes:g} min "
        f"after the round opened (status: {run.status or 'no run yet'}; pickle: {run.pickle or 'none'})"
    )
    alerted = any(r.incident and (r.round, r.model) == (run.round, run.model) for r in hosted_runs(work_dir))
    append_line(work_dir / RUNS_NAME, run.model_copy(update={"incident": not alerted}))
    if alerted:
        return UploadOutcome(model=run.model, status="skipped", detail=f"{what}; alerted already")
    return UploadOutcome(
        model=run.model,
        status="failed",
        detail=f"{what}: see numer.ai -> Models -> Model Upload; `numerflow pickle --model {run.model}` "
        "checks the pickle locally",
    )
