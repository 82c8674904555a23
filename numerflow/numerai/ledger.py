"""The append-only submission ledger: one JSON line per upload, in the work directory.

It answers "has this model already submitted this round from this trained run?", which is
what makes repeated triggers of the per-round flow upload once. Lines are appended with a
single write and fsync, so a crash leaves at most one incomplete last line, which is ignored.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

LEDGER_NAME = "submissions.jsonl"


class LedgerEntry(BaseModel):
    recorded_at: str
    round: int
    model: str
    trained_run_id: str
    submission_id: str
    sha256: str
    rows: int
    forced: bool = False


def ledger_path(work_dir: Path) -> Path:
    return work_dir / LEDGER_NAME


def append(work_dir: Path, **fields: Any) -> LedgerEntry:
    entry = LedgerEntry(recorded_at=datetime.now(UTC).isoformat(timespec="seconds"), **fields)
    path = ledger_path(work_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (entry.model_dump_json() + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return entry


def entries(work_dir: Path) -> list[LedgerEntry]:
    path = ledger_path(work_dir)
    if not path.is_file():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            found.append(LedgerEntry.model_validate(json.loads(line)))
        except ValueError:
            continue  # an incomplete last line from a crash mid-append
    return found


def already_submitted(
    work_dir: Path, round_number: int, model: str, trained_run_id: str
) -> LedgerEntry | None:
    for entry in reversed(entries(work_dir)):
        if (entry.round, entry.model, entry.trained_run_id) == (round_number, model, trained_run_id):
            return entry
    return None
