"""Exactly one upload per (round, model), whatever fails, as steps that can be checked:

    lock (round, model) -> settle creates whose outcome is unknown -> ledger check
    -> upload URL -> PUT (status checked) -> create -> ledger entry

Each step is retried on its own (transient failures only, within the retry budget), so a retry
never repeats a step that already took effect. A create is journalled before it is sent; when
its answer is lost, Numerai's list of the model's submissions is asked for the file's name
before creating another, on the next attempt or, if this process dies, by the next trigger.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel

from numerflow.numerai import ledger
from numerflow.numerai.client import NumeraiClient
from numerflow.numerai.errors import NumeraiError
from numerflow.numerai.locks import check_still_held, held

logger = logging.getLogger("numerflow.numerai")
T = TypeVar("T")
UPLOAD_STEPS = 4  # upload URL, PUT, create, lookup: the most one holder can spend on retries


class UploadOutcome(BaseModel):
    model: str
    status: Literal["uploaded", "skipped", "dry-run", "failed"]
    submission_id: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class UploadRequest:
    """One submission file for one model in one round, from one trained run."""

    round: int
    model: str
    model_id: str
    trained_run_id: str
    path: Path
    rows: int


def upload_lock_path(work_dir: Path, round_number: int, model: str) -> Path:
    return work_dir / "locks" / f"upload-r{round_number}-{model}.lock"


def upload_once(client: NumeraiClient, work_dir: Path, request: UploadRequest, force: bool) -> UploadOutcome:
    """Upload unless the ledger (or Numerai, for an unsettled create) already has this
    (round, model, trained run); `force` uploads again. Failures are returned, not raised."""
    what = f"upload for round {request.round}, model {request.model}"
    wait = UPLOAD_STEPS * client.retry_budget_seconds + 60  # a live holder finishes within this
    try:
        with held(upload_lock_path(work_dir, request.round, request.model), wait, what) as lease:
            return _Upload(client, work_dir, request, lambda: check_still_held(lease, what)).run(force)
    except NumeraiError as exc:
        logger.error("%s failed: %s", what, exc)
        return UploadOutcome(model=request.model, status="failed", detail=str(exc))


class _Upload:
    """The steps for one request, inside its lock; every attempt goes into the journal."""

    def __init__(
        self, client: NumeraiClient, work_dir: Path, request: UploadRequest, still_held: Callable[[], None]
    ) -> None:
        self.client, self.work_dir, self.request, self.still_held = client, work_dir, request, still_held
        self.data = request.path.read_bytes()  # what is sent is what is recorded
        self.sha256 = hashlib.sha256(self.data).hexdigest()
        self.attempts: Counter[str] = Counter()

    def run(self, force: bool) -> UploadOutcome:
        request = self.request
        self._settle_unknown_creates()
        previous = ledger.already_submitted(
            self.work_dir, request.round, request.model, request.trained_run_id
        )
        if previous and not force:
            return UploadOutcome(
                model=request.model,
                status="skipped",
                submission_id=previous.submission_id,
                detail=f"already submitted for round {request.round} from run {request.trained_run_id}",
            )
        target = self._step("upload-url", lambda: self.client.upload_target(request.path, request.model_id))
        self._step("put", lambda: self.client.put_file(target.url, self.data), target.filename)
        submission_id, recovered = self._create(target.filename)
        ledger.append(
            self.work_dir,
            round=request.round,
            model=request.model,
            trained_run_id=request.trained_run_id,
            submission_id=submission_id,
            sha256=self.sha256,
            rows=request.rows,
            forced=bool(previous),
            server_filename=target.filename,
            attempts=dict(self.attempts),
            recovered=recovered,
        )
        return UploadOutcome(model=request.model, status="uploaded", submission_id=submission_id)

    def _create(self, server_filename: str) -> tuple[str, str | None]:
        """Create the submission; after a failed attempt, first ask Numerai whether it holds it."""

        def attempt() -> tuple[str, str | None]:
            if self.attempts["create"] > 1:
                found = self._lookup(server_filename)
                if found:
                    return found, "listed on Numerai after a lost answer to create"
            self.still_held()  # a stalled holder whose lease was taken over must not create
            self._journal("create", "started", server_filename)
            return self.client.create_submission(server_filename, self.request.model_id), None

        return self._step("create", attempt, server_filename)

    def _settle_unknown_creates(self) -> None:
        """Creates from earlier runs that never learned their outcome (killed, lost answer):
        record the ones Numerai holds, so they are not uploaded again."""
        for pending in ledger.unsettled_creates(self.work_dir, self.request.round, self.request.model):
            filename = pending.server_filename or ""
            found = self.client.retrying(lambda f=filename: self._lookup(f), f"look up {filename}")
            if found:
                logger.warning("round %d, %s: a create interrupted earlier took effect (%s)",
                               pending.round, pending.model, found)  # fmt: skip
                ledger.append(
                    self.work_dir,
                    round=pending.round,
                    model=pending.model,
                    trained_run_id=pending.trained_run_id,
                    submission_id=found,
                    sha256=pending.sha256,
                    rows=pending.rows,
                    server_filename=filename,
                    recovered="listed on Numerai after an interrupted run",
                )

    def _lookup(self, server_filename: str) -> str | None:
        found = self.client.submission_named(self.request.model_id, server_filename)
        self._journal("lookup", "found" if found else "not-found", server_filename, found or "")
        return found

    def _step(self, step: ledger.Step, action: Callable[[], T], server_filename: str | None = None) -> T:
        def attempt() -> T:
            self.attempts[step] += 1
            try:
                result = action()
            except Exception as exc:
                self._journal(step, "failed", server_filename, f"{type(exc).__name__}: {exc}")
                raise
            self._journal(step, "ok", server_filename)
            return result

        return self.client.retrying(attempt, f"{step} ({self.request.path.name})")

    def _journal(self, step: ledger.Step, result: ledger.Result, server_filename: str | None,
                 detail: str = "") -> None:  # fmt: skip
        ledger.record_attempt(
            self.work_dir,
            round=self.request.round,
            model=self.request.model,
            trained_run_id=self.request.trained_run_id,
            sha256=self.sha256,
            rows=self.request.rows,
            step=step,
            result=result,
            server_filename=server_filename,
            detail=detail[:300],
        )
