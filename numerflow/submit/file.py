"""Submission files: `id,prediction` CSV, validated by numerai-tools before it is written.

A submission is checked against the live ids with `validate_submission_numerai` (headers,
every live id present, no NaN, values in [0, 1], non-zero spread) and only then written,
atomically, so the file at the configured path is always a complete, valid submission.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from numerai_tools.submissions import validate_submission_numerai
from pydantic import BaseModel

from numerflow.data.files import read_live_ids
from numerflow.io import atomic_path, is_sharing_violation
from numerflow.submit.live import LivePredictions

logger = logging.getLogger(__name__)


class SubmissionError(ValueError):
    """The predictions do not make a valid Numerai submission."""


def build_submission(ids: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """Rank scores into (0, 1) as (rank - 0.5) / n: only the ordering matters to Numerai."""
    ranks = pd.Series(np.asarray(scores, dtype=np.float64)).rank(method="average")
    return pd.DataFrame({"id": np.asarray(ids, dtype=str), "prediction": (ranks - 0.5) / len(ranks)})


def validate_submission(live_ids: np.ndarray, submission: pd.DataFrame) -> None:
    """Raise `SubmissionError` with numerai-tools' reason when the submission is invalid."""
    if submission["id"].isna().any():
        raise SubmissionError("invalid_submission_ids: submission has missing ids")
    try:
        _, _, _, extra_ids = validate_submission_numerai(pd.Series(live_ids, name="id"), submission)
    except AssertionError as exc:
        raise SubmissionError(str(exc) or "invalid submission") from None
    if extra_ids:
        raise SubmissionError(
            f"invalid_submission_ids: {len(extra_ids)} ids are not in the live data, e.g. {extra_ids[:3]}"
        )


def write_submission(live_ids: np.ndarray, submission: pd.DataFrame, path: Path) -> Path:
    """Validate, then write atomically: a failure leaves any previous file untouched.

    Returns the path written: `path`, or, when another program holds `path` open so Windows
    refuses to replace it (Excel locks a CSV it shows), a new file beside it named with the UTC
    time, so that the round is not lost to a file someone is looking at."""
    validate_submission(live_ids, submission)
    try:
        with atomic_path(path) as tmp:
            submission.to_csv(tmp, index=False)
    except PermissionError as exc:
        if not is_sharing_violation(exc):
            raise
        held = path
        path = held.with_name(f"{held.stem}.{datetime.now(UTC):%Y%m%dT%H%M%SZ}{held.suffix}")
        with atomic_path(path) as tmp:
            submission.to_csv(tmp, index=False)
        logger.warning("%s is held open by another program (Excel?): wrote %s instead", held, path)
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class SubmissionRecord(BaseModel):
    path: Path
    rows: int
    sha256: str


def make_submission(live: LivePredictions, target_path: Path) -> SubmissionRecord:
    """Validate against the live file's ids and write the CSV atomically to `target_path` (or
    beside it, when another program holds it open: numerflow.submit.file.write_submission)."""
    frame = pd.read_parquet(live.path)
    submission = build_submission(frame.index.to_numpy().astype(str), frame["stack"].to_numpy())
    try:
        path = write_submission(read_live_ids(live.live_file), submission, target_path)
    except SubmissionError as exc:
        raise SubmissionError(
            f"{live.path}: not a valid submission for the live file {live.live_file} ({exc}); "
            f"{target_path} was left as it was: run the round again to predict that live file"
        ) from None
    return SubmissionRecord(path=path, rows=len(frame), sha256=file_sha256(path))
