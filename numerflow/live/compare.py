"""Live next to validation: per round, the trained run that submitted it, its latest live CORR,
MMC and BMC (and whether each is final), and what validation promised for that run; per model,
the figures over its last resolved rounds that the decay alert and `numerflow status` use.

Scores are picked by name, never as "the round's last row": 60-day scores keep updating after
the 20-day ones resolve (numerai/numerapi#88), so the last row of a round may be a `corr60`.
"""

from __future__ import annotations

import math
from statistics import fmean

from pydantic import BaseModel

from numerflow.live.store import ModelHistory, RunFigures, ScoreRow

# Numerai's display names of the scores shown; payouts are on CORR and MMC, BMC is informational.
LIVE_SCORES = {"corr": "v2_corr20", "mmc": "mmc", "bmc": "bmc"}
STATUS_WINDOW = 20  # rounds `numerflow status` averages over


class LiveValue(BaseModel):
    value: float | None
    day: int
    final: bool  # Numerai marked it resolved: it will not change again


class RoundLive(BaseModel):
    round: int
    trained_run_id: str | None
    scores: dict[str, LiveValue]  # by key of LIVE_SCORES, only those Numerai has sent
    validation: RunFigures  # of the trained run; empty when unknown

    def final(self, key: str) -> float | None:
        live = self.scores.get(key)
        return live.value if live is not None and live.final else None


class WindowFigures(BaseModel):
    """One score over a model's last `rounds` resolved rounds, against validation."""

    key: str  # corr or mmc
    rounds: list[int]
    values: list[float]
    mean: float
    validation_mean: float | None  # mean of the rounds' trained runs' validation means
    validation_std: float | None  # their per-era standard deviation, likewise averaged

    def standard_error(self) -> float | None:
        if self.validation_std is None or not self.values:
            return None
        return self.validation_std / math.sqrt(len(self.values))


def round_table(history: ModelHistory) -> list[RoundLive]:
    """One entry per round Numerai has scores for, oldest first."""
    latest: dict[tuple[int, str], ScoreRow] = {}
    for row in history.rows:
        key = (row.round, row.score)
        if key not in latest or row.day > latest[key].day:
            latest[key] = row
    rounds = sorted({row.round for row in history.rows})
    table = []
    for number in rounds:
        scores = {
            key: LiveValue(value=row.value, day=row.day, final=row.resolved)
            for key, name in LIVE_SCORES.items()
            if (row := latest.get((number, name))) is not None
        }
        run_id = history.trained_runs.get(number)
        figures = history.run_figures.get(run_id, RunFigures()) if run_id else RunFigures()
        table.append(RoundLive(round=number, trained_run_id=run_id, scores=scores, validation=figures))
    return table


def window(table: list[RoundLive], key: str, size: int) -> WindowFigures | None:
    """`key`'s final values over the last `size` resolved rounds (fewer when fewer resolved);
    None when no round has a final value yet."""
    resolved = [entry for entry in table if entry.final(key) is not None][-size:]
    if not resolved:
        return None
    values = [entry.final(key) for entry in resolved]
    means = [_figure(e.validation, key, "mean") for e in resolved]
    stds = [_figure(e.validation, key, "std") for e in resolved]
    return WindowFigures(
        key=key,
        rounds=[entry.round for entry in resolved],
        values=[float(v) for v in values if v is not None],
        mean=fmean(v for v in values if v is not None),
        validation_mean=_mean_known(means),
        validation_std=_mean_known(stds),
    )


def _figure(figures: RunFigures, key: str, which: str) -> float | None:
    return getattr(figures, f"{key}_{which}")


def _mean_known(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None and not math.isnan(v)]
    return fmean(known) if known else None
