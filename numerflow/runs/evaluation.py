"""A slot's evaluation: read its plan and fold results, load the out-of-fold predictions,
predict the scored validation eras, then stack and score with the pure functions of
`numerflow.score`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from numerflow.data.files import (
    to_era_numbers,
    validation_eras,
)
from numerflow.data.rows import FeatureRows, SelectedRows
from numerflow.io import atomic_path
from numerflow.runs.plan import DataPlan, SlotPlan
from numerflow.score.metrics import per_era_corr, summarize, summarize_all
from numerflow.score.results import STACK, Evaluation, SplitScores
from numerflow.score.stacking import cross_fitted, era_rank, fit_stacker
from numerflow.score.validation import ValidationSet, era_rows, numerai_metrics
from numerflow.train.fit import FoldResult
from numerflow.train.predict import load_models, predict_rows
from numerflow.train.prepare import PreparedData


def model_paths(results: list[FoldResult], targets: list[str]) -> dict[str, list[Path]]:
    return {
        target: [r.model_path for r in sorted(results, key=lambda r: r.fold) if r.target == target]
        for target in targets
    }


def load_oof(results: list[FoldResult], targets: list[str]) -> pd.DataFrame:
    """Out-of-fold predictions indexed by id: `era`, `fold`, and one column per target."""
    frames = []
    for target in targets:
        parts = [pd.read_parquet(r.oof_path) for r in results if r.target == target]
        frame = pd.concat(parts).set_index("id").rename(columns={"prediction": target})
        frames.append(frame if not frames else frame[[target]])
    return pd.concat(frames, axis=1, join="inner").sort_values(["era", "fold"], kind="stable")


def evaluate(
    slot: SlotPlan, data: DataPlan, prepared: PreparedData, results: list[FoldResult], out_dir: Path
) -> Evaluation:
    """Stack the slot's base models and score everything per era, out of fold and on validation."""
    targets = slot.targets
    main = targets[0]
    kind = slot.stacking

    oof = load_oof(results, targets)
    meta = pd.read_parquet(prepared.meta_path, columns=["id", main]).set_index("id")
    oof_target = meta[main].reindex(oof.index)
    ranked = era_rank(oof[targets], oof["era"].to_numpy())
    stacker = fit_stacker(kind, ranked, oof_target)
    oof[STACK] = cross_fitted(kind, ranked, oof_target, oof["fold"].to_numpy())
    with atomic_path(out_dir / "oof.parquet") as tmp:
        oof.to_parquet(tmp)
    oof_scores = per_era_corr(oof[[*targets, STACK]], oof_target, oof["era"].to_numpy())

    validation = _predict_validation(slot, data, prepared, results)
    val_predictions, val_target, val_eras = validation.predictions, validation.target, validation.eras
    val_predictions[STACK] = stacker.combine(era_rank(val_predictions[targets], val_eras))
    with atomic_path(out_dir / "validation.parquet") as tmp:
        val_predictions.assign(era=val_eras, target=val_target).to_parquet(tmp)
    val_scores = per_era_corr(val_predictions, val_target, val_eras)

    return Evaluation(
        stacker=stacker,
        summary=SplitScores(oof=summarize_all(oof_scores), validation=summarize_all(val_scores)),
        per_era={"oof": era_rows(oof_scores), "validation": era_rows(val_scores)},
        per_fold=_fold_rows(oof, oof_scores, results),
        validation_eras=sorted({int(e) for e in val_eras}),
        validation_metrics=numerai_metrics(
            validation, data.version_dir, data.benchmark_model, data.feature_metrics_eras
        ),
    )


def scored_validation_eras(data: DataPlan, last_train_era: int, embargo: int) -> np.ndarray:
    """Every `validation_era_stride`-th labelled validation era past the embargo (all by default),
    whatever the training's `era_stride`."""
    path = data.version_dir / "validation.parquet"
    return validation_eras(path, last_train_era, embargo, era_stride=data.validation_era_stride)


def _predict_validation(
    slot: SlotPlan, data: DataPlan, prepared: PreparedData, results: list[FoldResult]
) -> ValidationSet:
    """Base-model predictions on the scored validation eras, read in batches."""
    main = slot.targets[0]
    path = data.version_dir / "validation.parquet"
    eras = scored_validation_eras(data, max(prepared.eras), slot.folds.embargo_eras)
    rows = SelectedRows(path, eras.tolist())
    if len(rows) == 0:
        raise ValueError("no validation eras left after the embargo; lower embargo_eras or add data")
    meta = rows.table(["id", "era", main])
    models = load_models(model_paths(results, slot.targets))
    predictions = predict_rows(models, FeatureRows(rows, prepared.feature_names))
    predictions.index = pd.Index(meta["id"].to_numpy(zero_copy_only=False).astype(str), name="id")
    target = pd.Series(meta[main].to_numpy(zero_copy_only=False).astype(np.float32), index=predictions.index)
    era_numbers = to_era_numbers(path, meta["era"].to_numpy(zero_copy_only=False))
    labelled = target.notna().to_numpy()
    return ValidationSet(
        rows=rows,
        features=slot.neutralisers,
        positions=np.flatnonzero(labelled),
        predictions=predictions[labelled],
        target=target[labelled],
        eras=era_numbers[labelled],
    )


def _fold_rows(oof: pd.DataFrame, scores: pd.DataFrame, results: list[FoldResult]) -> list[dict[str, Any]]:
    """Mean out-of-fold CORR of each base model within each fold's validation eras."""
    era_to_fold = oof.groupby("era")["fold"].first()
    rows = []
    for result in sorted(results, key=lambda r: (r.target, r.fold)):
        eras = era_to_fold.index[era_to_fold == result.fold]
        figures = summarize(scores.loc[scores.index.isin(eras), result.target])
        rows.append(
            {
                "target": result.target,
                "fold": result.fold,
                "train_rows": result.train_rows,
                "validation_rows": result.validation_rows,
                "corr_mean": round(figures.mean, 6),
                "corr_sharpe": round(figures.sharpe, 4),
                "eras": figures.eras,
                "seconds": result.seconds,
                "device": result.device_type,
                "step": result.step,
                "downgrades": len(result.downgrades),
                "reused": result.reused,
            }
        )
    return rows
