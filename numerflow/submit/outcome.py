"""What a submission did: each slot's file from its trained run (or why it has none), and the
uploads, as the submission subflow returns them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from numerflow.numerai.uploads import UploadOutcome
from numerflow.submit.file import SubmissionRecord


class SlotSubmission(BaseModel):
    """What one model slot submitted: the file from its trained run, or why it could not."""

    slot: str
    submit_as: str | None = None
    trained_run_id: str | None = None
    submission: SubmissionRecord | None = None
    error: str | None = None


class SubmissionOutcome(BaseModel):
    status: Literal["submitted", "dry-run", "no-open-round", "upload-failed", "slot-failed"]
    round: int | None = None
    slots: list[SlotSubmission] = []
    uploads: list[UploadOutcome] = []
    message: str = ""

    def failed_slots(self) -> list[SlotSubmission]:
        return [s for s in self.slots if s.error is not None]
