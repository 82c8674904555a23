"""The append-only submission ledger and its journal of upload attempts, in the work directory.

- `submissions.jsonl`: one line per submission Numerai holds (its submission id and the name
  Numerai gave the file). It answers "has this model already submitted this round from this
  trained run?", which is what makes repeated triggers of the per-round flow upload once.
- `upload_attempts.jsonl`: one line per attempt of each upload step. A create is journalled
  *before* it is sent, so a create whose outcome is unknown (lost answer, killed process) can
  be settled later by asking Numerai instead of uploading again.

Records are appended as whole lines and fsynced. A crash or a full disk mid-append can still
leave a torn last line; the next append first ends it with a newline (and logs it, once), so
the torn line stays a line of its own that readers skip and never swallows the next record.
Callers hold the (round, model) upload lock around read-then-append.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from numerflow.io import naming_full_disk

logger = logging.getLogger("numerflow.numerai")
LEDGER_NAME = "submissions.jsonl"
MODEL_UPLOADS_NAME = "model_uploads.jsonl"  # one line per pickle Numerai accepted for a model
ATTEMPTS_NAME = "upload_attempts.jsonl"

Step = Literal["upload-url", "put", "create", "lookup"]
Result = Literal["started", "ok", "failed", "found", "not-found"]
Line = TypeVar("Line", bound=BaseModel)


class LedgerEntry(BaseModel):
    recorded_at: str
    round: int
    model: str
    trained_run_id: str
    submission_id: str
    sha256: str
    rows: int
    forced: bool = False
    server_filename: str | None = None  # Numerai's name for the uploaded file
    attempts: dict[str, int] = {}  # step -> attempts it took
    recovered: str | None = None  # how the id was learned when create's answer never came


class ModelUploadEntry(BaseModel):
    """A pickle uploaded for a model (Numerai then predicts every round with it)."""

    recorded_at: str
    model: str
    trained_run_id: str
    upload_id: str  # Numerai's answer to createComputePickleUpload
    server_filename: str
    sha256: str
    bytes: int
    docker_image: str
    data_version: str
    attempts: dict[str, int] = {}


class Attempt(BaseModel):
    recorded_at: str
    round: int
    model: str
    trained_run_id: str
    sha256: str
    rows: int
    step: Step
    result: Result
    server_filename: str | None = None
    detail: str = ""


def ledger_path(work_dir: Path) -> Path:
    return work_dir / LEDGER_NAME


def attempts_path(work_dir: Path) -> Path:
    return work_dir / ATTEMPTS_NAME


def append(work_dir: Path, **fields: Any) -> LedgerEntry:
    entry = LedgerEntry(recorded_at=_now(), **fields)
    append_line(ledger_path(work_dir), entry)
    return entry


def append_model_upload(work_dir: Path, **fields: Any) -> ModelUploadEntry:
    entry = ModelUploadEntry(recorded_at=_now(), **fields)
    append_line(work_dir / MODEL_UPLOADS_NAME, entry)
    return entry


def model_uploads(work_dir: Path) -> list[ModelUploadEntry]:
    return read_lines(work_dir / MODEL_UPLOADS_NAME, ModelUploadEntry)


def model_uploaded(work_dir: Path, model: str, trained_run_id: str) -> ModelUploadEntry | None:
    for entry in reversed(model_uploads(work_dir)):
        if (entry.model, entry.trained_run_id) == (model, trained_run_id):
            return entry
    return None


def record_attempt(work_dir: Path, **fields: Any) -> Attempt:
    attempt = Attempt(recorded_at=_now(), **fields)
    append_line(attempts_path(work_dir), attempt)
    return attempt


def entries(work_dir: Path) -> list[LedgerEntry]:
    return read_lines(ledger_path(work_dir), LedgerEntry)


def attempts(work_dir: Path) -> list[Attempt]:
    return read_lines(attempts_path(work_dir), Attempt)


def already_submitted(
    work_dir: Path, round_number: int, model: str, trained_run_id: str
) -> LedgerEntry | None:
    for entry in reversed(entries(work_dir)):
        if (entry.round, entry.model, entry.trained_run_id) == (round_number, model, trained_run_id):
            return entry
    return None


def unsettled_creates(work_dir: Path, round_number: int, model: str) -> list[Attempt]:
    """Creates sent for (round, model) whose outcome is still unknown: not in the ledger, and
    not looked up on Numerai after they were sent."""
    pending: dict[str | None, Attempt] = {}
    for attempt in attempts(work_dir):
        if (attempt.round, attempt.model) != (round_number, model):
            continue
        if attempt.step == "create" and attempt.result == "started":
            pending[attempt.server_filename] = attempt
        elif attempt.step == "lookup":
            pending.pop(attempt.server_filename, None)
    held = {e.server_filename for e in entries(work_dir)}
    return [a for name, a in pending.items() if name not in held]


def append_line(path: Path, record: BaseModel) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (record.model_dump_json() + "\n").encode("utf-8")
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)  # no \r\n on Windows
    with naming_full_disk(path):
        fd = os.open(path, flags, 0o644)
        try:
            _write_all(fd, _end_torn_line(path, fd) + line)
            os.fsync(fd)
        finally:
            os.close(fd)


TAIL_BYTES = 1 << 16  # far longer than any record


def _end_torn_line(path: Path, fd: int) -> bytes:
    """A newline when the file's last line was cut short, so the next record starts a line."""
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0:
        return b""
    os.lseek(fd, max(0, size - TAIL_BYTES), os.SEEK_SET)  # appends go to the end regardless
    tail = os.read(fd, TAIL_BYTES)
    if tail.endswith(b"\n"):
        return b""
    start = size - len(tail) + tail.rfind(b"\n") + 1
    logger.warning(
        "%s: its last line (from byte %d) was cut short by a crash or a full disk; "
        "it is ended and skipped, later records are kept",
        path,
        start,
    )
    return b"\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:  # os.write may write only part (a disk filling up): write the rest or raise
        view = view[os.write(fd, view) :]


def read_lines(path: Path, model: type[Line]) -> list[Line]:
    if not path.is_file():
        return []
    found = []
    for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
        try:
            found.append(model.model_validate(json.loads(line)))
        except ValueError:
            continue  # a line torn by a crash or a full disk, logged when it was ended
    return found


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
