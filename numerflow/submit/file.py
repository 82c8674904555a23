"""Submission files: `id,prediction` CSV, validated by numerai-tools before it is written.

A submission is checked against the live ids with `validate_submission_numerai` (headers,
every live id present, no NaN, values in [0, 1], non-zero spread) and only then written,
atomically, so the file at the configured path is always a complete, valid submission.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from numerai_tools.submissions import validate_submission_numerai

from numerflow.io import atomic_path


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
    """Validate, then write atomically: a failure leaves any previous file untouched."""
    validate_submission(live_ids, submission)
    with atomic_path(path) as tmp:
        submission.to_csv(tmp, index=False)
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
