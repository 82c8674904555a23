"""Typed scoring results: the figures of one per-era score, each model's figures per split,
one of Numerai's metrics for every model, and a slot's whole evaluation.

Stored in a slot's manifest as they always were (flat keys such as `mean_last200`, NaN as
null), so manifests written before these models existed still load.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, PlainSerializer, model_serializer, model_validator

from numerflow.score.stacking import Stacker

STACK = "stack"  # the stacked model's column, beside one column per base model
RECENT_ERAS = 200  # Numerai's research tooling also reads every figure over the last 200 eras


def _nan_from_null(value: Any) -> Any:
    return math.nan if value is None else value


def _null_from_nan(value: float) -> float | None:
    return None if math.isnan(value) else value


# A score that may be undefined (no era, a constant series): NaN in memory, null in JSON.
Score = Annotated[float, BeforeValidator(_nan_from_null), PlainSerializer(_null_from_nan, when_used="json")]
_RECENT_KEY = re.compile(r"(?P<figure>.+)_last(?P<eras>\d+)")


class Figures(BaseModel):
    """mean, std (ddof=0), sharpe and max drawdown of a per-era score, over `eras` eras."""

    mean: Score
    std: Score
    sharpe: Score
    max_drawdown: Score
    eras: int


class ScoreFigures(Figures):
    """Figures over every era, and (`recent`) over the last `window` eras; manifests written
    before the last-era figures existed have none."""

    window: int = RECENT_ERAS
    recent: Figures | None = None

    @model_validator(mode="before")
    @classmethod
    def _nest_recent(cls, data: Any) -> Any:
        """Stored flat (`mean_last200`, ...): the `_last<N>` keys become `recent` and `window`."""
        if not isinstance(data, dict) or "recent" in data:
            return data
        kept, recent, window = {}, {}, None
        for key, value in data.items():
            if match := _RECENT_KEY.fullmatch(key):
                recent[match["figure"]] = value
                window = int(match["eras"])
            else:
                kept[key] = value
        return kept | ({"recent": recent, "window": window} if recent else {})

    @model_serializer(mode="wrap")
    def _flat(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        recent, window = data.pop("recent"), data.pop("window")
        return data | {f"{name}_last{window}": value for name, value in (recent or {}).items()}


ModelFigures = dict[str, ScoreFigures]  # by model: each base model and the stack


class SplitScores(BaseModel):
    """CORR figures of every model out of fold and on validation."""

    oof: ModelFigures = {}
    validation: ModelFigures = {}


class MetricScores(BaseModel):
    """One of Numerai's validation metrics for every model, or the reason it was not computed."""

    against: str | None = None  # what a contribution is measured against (MMC, BMC)
    summary: ModelFigures = {}
    per_era: list[dict[str, Any]] = []  # rows of era -> score per model
    not_computed: str | None = None


class Evaluation(BaseModel):
    """Scores of every base model and the stack, out of fold and on validation."""

    stacker: Stacker
    summary: SplitScores  # CORR
    per_era: dict[str, list[dict[str, Any]]]  # {"oof"|"validation": rows of era -> CORR}
    per_fold: list[dict[str, Any]]
    validation_eras: list[int]
    validation_metrics: dict[str, MetricScores]  # "mmc", "bmc", "fnc", "feature_exposure"
