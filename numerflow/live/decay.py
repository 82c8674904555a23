"""The decay alert, one per incident: a model whose mean live CORR (or MMC) over its last
`window` resolved rounds falls more than `sigma` standard errors below what validation
promised, or is negative in every round of the window.

An incident opens when a check finds a score decayed that was not decayed at the previous
check, and closes when a check finds it back inside its band; only opening sends a message.
Open incidents are kept in `<work_dir>/live_scores/decay_incidents.json` (replaced atomically),
so repeated per-round runs during one incident stay quiet, and a model that recovers and
decays again is a new incident.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel

from numerflow.io import write_json_atomic
from numerflow.live.compare import RoundLive, WindowFigures, window
from numerflow.live.store import LIVE_DIR

INCIDENTS_FILE = "decay_incidents.json"
LABELS = {"corr": "CORR", "mmc": "MMC"}  # the scores Numerai pays on


class DecayAlert(BaseModel):
    model: str
    score: str  # CORR or MMC
    reason: str
    figures: WindowFigures
    trained_runs: list[str]  # the runs that submitted the window's rounds, newest first
    opened_at: str

    def subject(self) -> str:
        return f"numerflow: live {self.score} of {self.model} decayed"

    def body(self) -> str:
        f = self.figures
        expected = "unknown (the trained runs' validation figures were not found)"
        if f.validation_mean is not None:
            expected = f"{f.validation_mean:.4f} per round"
            if f.validation_std is not None:
                expected += f" (per-era std {f.validation_std:.4f}, standard error {f.standard_error():.4f})"
        return (
            f"Model {self.model}: live {self.score} {self.reason}.\n"
            f"Window: rounds {f.rounds[0]}-{f.rounds[-1]} ({len(f.values)} resolved rounds), "
            f"mean {f.mean:.4f}, lowest {min(f.values):.4f}, highest {max(f.values):.4f}.\n"
            f"Validation promised: {expected}.\n"
            f"Trained run: {', '.join(self.trained_runs) or 'unknown (no ledger entry for these rounds)'}."
        )


def decay_reason(figures: WindowFigures, size: int, sigma: float) -> str | None:
    """Why the window counts as decayed, or None. Only a full window of resolved rounds counts."""
    if len(figures.values) < size:
        return None
    if all(value < 0 for value in figures.values):
        return f"was negative in every one of the last {size} resolved rounds"
    error = figures.standard_error()
    if figures.validation_mean is None or error is None:
        return None
    floor = figures.validation_mean - sigma * error
    if figures.mean < floor:
        return (
            f"averaged {figures.mean:.4f} over the last {size} resolved rounds, below "
            f"{floor:.4f} (validation mean {figures.validation_mean:.4f} minus {sigma:g} standard errors)"
        )
    return None


def incidents_path(work_dir: Path) -> Path:
    return work_dir / LIVE_DIR / INCIDENTS_FILE


def open_incidents(work_dir: Path) -> dict[str, str]:
    """`model/score` -> when its open incident was alerted."""
    path = incidents_path(work_dir)
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError):
        raise ValueError(
            f"{path}: not a decay-incident file; delete it (open incidents then alert again)"
        ) from None


def check_decay(
    work_dir: Path,
    model: str,
    table: list[RoundLive],
    size: int,
    sigma: float,
    send: Callable[[DecayAlert], None],
    now: Callable[[], datetime],
) -> list[DecayAlert]:
    """Send an alert for each of the model's scores that newly decayed; returns those sent.
    An incident is recorded only after its alert went out, so a failed send is tried again."""
    incidents = open_incidents(work_dir)
    before = dict(incidents)
    sent = []
    for key, label in LABELS.items():
        figures = window(table, key, size)
        reason = decay_reason(figures, size, sigma) if figures is not None else None
        name = f"{model}/{label}"
        if reason is None:
            incidents.pop(name, None)  # recovered (or not enough rounds): the incident is over
            continue
        if name in incidents:
            continue  # the same incident: already alerted
        runs = {e.round: e.trained_run_id for e in table if e.round in figures.rounds}
        alert = DecayAlert(
            model=model,
            score=label,
            reason=reason,
            figures=figures,
            trained_runs=list(dict.fromkeys(r for _, r in sorted(runs.items(), reverse=True) if r)),
            opened_at=now().isoformat(timespec="seconds"),
        )
        send(alert)
        incidents[name] = alert.opened_at
        sent.append(alert)
    if incidents != before:
        write_json_atomic(incidents_path(work_dir), incidents)
    return sent
