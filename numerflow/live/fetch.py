"""Read a model's live scores from Numerai and fold them into its stored history.

The history is written only after Numerai answered, in one atomic replace: a fetch that fails
(HTTP 5xx, a timeout, a refused connection) raises and leaves the stored history as it was.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from numerflow.live.store import ModelHistory, RunFigures, load_history, merge_rows, save_history, score_row
from numerflow.numerai import ledger
from numerflow.runs.manifest import SLOTS_DIR, read_manifest
from numerflow.score.results import STACK

logger = logging.getLogger("numerflow.live")


class ScoresSource(Protocol):
    def submission_scores(self, model_id: str, last_n_rounds: int) -> list[dict[str, Any]]: ...


def fetch_scores(
    source: ScoresSource, work_dir: Path, model: str, model_id: str, last_n_rounds: int
) -> ModelHistory:
    """Fetch the model's scores of its last rounds, merge them into its history and save it."""
    answers = source.submission_scores(model_id, last_n_rounds)
    history = load_history(work_dir, model)
    history.rows = merge_rows(history.rows, [score_row(a) for a in answers])
    history.model_id = model_id
    history.fetched_at = datetime.now(UTC).isoformat(timespec="seconds")
    record_trained_runs(work_dir, history)
    save_history(work_dir, history)
    return history


def record_trained_runs(work_dir: Path, history: ModelHistory) -> None:
    """Which trained run submitted each round (the ledger's newest entry for it) and those runs'
    validation figures, copied while their folders still exist."""
    for entry in ledger.entries(work_dir):
        if entry.model == history.model:
            history.trained_runs[entry.round] = entry.trained_run_id
    for run_id in set(history.trained_runs.values()) - set(history.run_figures):
        figures = run_figures(work_dir / run_id / SLOTS_DIR / history.model)
        if figures is not None:
            history.run_figures[run_id] = figures


def run_figures(slot_dir: Path) -> RunFigures | None:
    """The stack's validation CORR and MMC mean and per-era std from a slot's manifest, or None
    when the manifest is gone or unreadable (the live table then shows no expectation)."""
    try:
        metrics = read_manifest(slot_dir).metrics
    except (OSError, ValueError) as exc:
        logger.warning("live scores: no validation figures from %s: %s", slot_dir, exc)
        return None
    corr = metrics.summary.validation.get(STACK)
    mmc = metrics.validation["mmc"].summary.get(STACK) if "mmc" in metrics.validation else None
    return RunFigures(
        corr_mean=_known(corr and corr.mean),
        corr_std=_known(corr and corr.std),
        mmc_mean=_known(mmc and mmc.mean),
        mmc_std=_known(mmc and mmc.std),
    )


def _known(value: float | None) -> float | None:
    """None where the manifest has no figure (NaN: no era scored)."""
    return None if value is None or math.isnan(value) else value


def refresh(
    source: ScoresSource, work_dir: Path, model_ids: dict[str, str], last_n_rounds: int
) -> tuple[dict[str, ModelHistory], dict[str, str]]:
    """Fetch every model; one that fails keeps its stored history and is reported by name.
    Returns the histories (fetched or stored) and the errors by model."""
    histories, errors = {}, {}
    for model, model_id in model_ids.items():
        try:
            histories[model] = fetch_scores(source, work_dir, model, model_id, last_n_rounds)
        except Exception as exc:  # a failed read of one model must not hide the others' scores
            errors[model] = f"{type(exc).__name__}: {exc}"
            logger.warning("live scores of %s not fetched (stored history kept): %s", model, errors[model])
            histories[model] = load_history(work_dir, model)
    return histories, errors
