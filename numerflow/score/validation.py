"""Numerai's validation metrics besides CORR: MMC against the meta model, BMC against a
benchmark model, FNC and the max feature exposure, each per era and summarised, or absent with
the reason."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from numerflow.data.rows import FeatureRows, SelectedRows
from numerflow.score.metrics import per_era_contribution, per_era_feature_scores, summarize_all
from numerflow.score.references import NotComputed, benchmark_model, meta_model
from numerflow.score.results import MetricScores

# The metrics a participant compares next to CORR, by key in `numerai_metrics`, with their
# label. Every renderer (the CLI, the run summary, the run history, the validation chart) shows
# these columns, so a new lead metric is computed in `numerai_metrics` and named here, nowhere else.
LEAD_METRICS = {"mmc": "MMC", "bmc": "BMC"}


@dataclass
class ValidationSet:
    """The scored validation rows: predictions by id, their target and era, and where their
    features are in the file (read again, one era at a time, for FNC and feature exposure)."""

    rows: SelectedRows
    features: list[str]
    positions: np.ndarray  # each scored row's position among `rows`
    predictions: pd.DataFrame
    target: pd.Series
    eras: np.ndarray

    def era_features(self, newest: int | None = None) -> Iterator[tuple[int, pd.DataFrame]]:
        """Each era's features indexed by id; only the `newest` eras when given."""
        reader = FeatureRows(self.rows, self.features)
        eras = np.unique(self.eras)
        for era in eras if newest is None else eras[-newest:]:
            in_era = self.eras == era
            at = self.positions[in_era]
            block = reader.block(int(at.min()), int(at.max()) + 1)[at - at.min()]
            index = self.predictions.index[in_era]
            yield int(era), pd.DataFrame(block.astype(np.float32), index=index, columns=self.features)


def numerai_metrics(
    validation: ValidationSet, version_dir: Path, benchmark: str, feature_metrics_eras: int | None
) -> dict[str, MetricScores]:
    """MMC (against the meta model in `version_dir`), BMC (against its `benchmark` model), FNC
    and the max feature exposure (over the newest `feature_metrics_eras` eras, all when None)
    of every model on the validation rows."""
    ids = validation.predictions.index
    metrics = {
        "mmc": _contribution(validation, "meta model", lambda: meta_model(version_dir, ids)),
        "bmc": _contribution(validation, benchmark, lambda: benchmark_model(version_dir, benchmark, ids)),
    }
    fnc, exposure = per_era_feature_scores(
        validation.predictions, validation.target, validation.era_features(feature_metrics_eras)
    )
    metrics["fnc"] = _metric(fnc)
    metrics["feature_exposure"] = _metric(exposure)
    return metrics


def _contribution(
    validation: ValidationSet, against: str, reference: Callable[[], pd.Series]
) -> MetricScores:
    """Contribution against the predictions `reference` loads, or why they are not there."""
    try:
        scores = per_era_contribution(validation.predictions, reference(), validation.target, validation.eras)
    except NotComputed as exc:
        return MetricScores(against=against, not_computed=str(exc))
    return _metric(scores, against)


def _metric(scores: pd.DataFrame, against: str | None = None) -> MetricScores:
    return MetricScores(against=against, summary=summarize_all(scores), per_era=era_rows(scores))


def era_rows(scores: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {"era": f"{int(era):04d}", **{k: round(float(v), 6) for k, v in row.items()}}
        for era, row in scores.iterrows()
    ]
