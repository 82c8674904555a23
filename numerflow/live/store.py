"""Each Numerai model's live scores, kept under the work folder so they outlive runs and retention.

`<work_dir>/live_scores/models/<model>.json` holds one row per (round, score name, day) as numerapi's
`submission_scores` returns them, plus what the comparison with validation needs once the
trained run's folder is gone: which trained run submitted each round and that run's validation
figures. Numerai revises a day's value while it computes it, so a fetched row replaces the
stored row of the same (round, score, day); rows never duplicate. The file is replaced
atomically, so a fetch that fails half-way leaves the previous history as it was.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from numerflow.io import write_text_atomic

LIVE_DIR = "live_scores"
MODELS_DIR = "models"  # the histories, apart from the decay alert's state beside them


class ScoreRow(BaseModel):
    round: int
    score: str  # Numerai's displayName: v2_corr20, mmc, bmc, corr60, ...
    day: int  # score day within the round (1..20 for 20-day scores, up to 60 for 60-day ones)
    value: float | None
    percentile: float | None = None
    date: str | None = None  # ISO date of the daily update
    resolved: bool = False
    submission_id: str | None = None

    def key(self) -> tuple[int, str, int]:
        return (self.round, self.score, self.day)


class RunFigures(BaseModel):
    """A trained run's validation record of one slot: per-era CORR (and MMC) mean and std."""

    corr_mean: float | None = None
    corr_std: float | None = None
    mmc_mean: float | None = None
    mmc_std: float | None = None


class ModelHistory(BaseModel):
    model: str
    model_id: str = ""
    fetched_at: str | None = None
    rows: list[ScoreRow] = Field(default_factory=list)
    trained_runs: dict[int, str] = Field(default_factory=dict)  # round -> run id that submitted it
    run_figures: dict[str, RunFigures] = Field(default_factory=dict)  # run id -> validation figures


def history_path(work_dir: Path, model: str) -> Path:
    return work_dir / LIVE_DIR / MODELS_DIR / f"{model}.json"


def load_history(work_dir: Path, model: str) -> ModelHistory:
    """The stored history, or an empty one; a file that is not a history is an error naming it."""
    path = history_path(work_dir, model)
    if not path.is_file():
        return ModelHistory(model=model)
    try:
        return ModelHistory.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(
            f"{path}: not a live-scores history ({exc.__class__.__name__}); move it aside and run "
            "`numerflow scores` to fetch it again"
        ) from None


def save_history(work_dir: Path, history: ModelHistory) -> Path:
    # pydantic's own serialiser: json.dumps of a year's daily rows took ~100 ms a save
    return write_text_atomic(history_path(work_dir, history.model), history.model_dump_json())


def stored_models(work_dir: Path) -> list[str]:
    folder = work_dir / LIVE_DIR / MODELS_DIR
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def merge_rows(stored: list[ScoreRow], fetched: list[ScoreRow]) -> list[ScoreRow]:
    """Stored rows with each fetched row put in place of the stored row of its key."""
    merged = {row.key(): row for row in stored}
    merged.update((row.key(), row) for row in fetched)
    return sorted(merged.values(), key=ScoreRow.key)


def score_row(answer: dict[str, Any]) -> ScoreRow:
    """One numerapi `submission_scores` entry (dates already parsed by numerapi) as a row."""
    return ScoreRow(
        round=int(answer["roundNumber"]),
        score=str(answer["displayName"]),
        day=int(answer["day"]),
        value=_number(answer.get("value")),
        percentile=_number(answer.get("percentile")),
        date=_iso(answer.get("date")),
        resolved=bool(answer.get("resolved")),
        submission_id=answer.get("submissionId"),
    )


def _number(value: Any) -> float | None:
    return None if value is None else float(value)  # strings too: Numerai sends some as text


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime) else str(value)
