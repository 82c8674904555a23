"""Train one fold x target on the shared bins, stepping down the fallback ladder on GPU errors.

Every fold x target loads the binned Dataset, takes the subset of its training rows, sets the
target as label and trains; its out-of-fold rows are read back from parquet one row group at
a time. A fold finished before under the same inputs is restored from the fold cache."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import lightgbm as lgb
import numpy as np
import pandas as pd
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from numerflow.config.models import LightGBMParams
from numerflow.data.files import DataError
from numerflow.data.rows import FeatureRows, SelectedRows
from numerflow.io import atomic_path
from numerflow.lgbpaths import keep_opencl_cache_ascii
from numerflow.progress import ProgressReport
from numerflow.train.device import FallbackStep, is_gpu_error
from numerflow.train.foldcache import FoldCache, fold_key
from numerflow.train.folds import Fold
from numerflow.train.model_files import save_booster
from numerflow.train.predict import predict_rows
from numerflow.train.prepare import PreparedData
from numerflow.train.progress import TreeProgress

T = TypeVar("T")


class FoldResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    target: str
    fold: int
    model_path: Path
    oof_path: Path
    train_rows: int
    validation_rows: int
    seconds: float
    device_type: str
    step: str = Field("", validation_alias=AliasChoices("step", "tier"))  # older records: "tier"
    downgrades: list[dict[str, str]] = []
    reused: bool = False  # restored from the fold cache instead of trained
    host: str = ""  # where it was trained (a Dask worker's host when scaled out)
    pid: int = 0


def fold_paths(models_dir: Path, target: str, fold: Fold) -> tuple[Path, Path]:
    """Where a fold's model and out-of-fold predictions live in a run."""
    folder = models_dir / target
    return folder / f"fold_{fold.index}.txt", folder / f"fold_{fold.index}_oof.parquet"


def fit_fold(
    prepared: PreparedData,
    fold: Fold,
    target: str,
    params: LightGBMParams,
    seed: int,
    models_dir: Path,
    on_progress: ProgressReport | None = None,
) -> FoldResult:
    """Train `target` on the fold's training eras; predict its validation eras (out of fold)."""
    started = time.perf_counter()
    meta = pd.read_parquet(prepared.meta_path)
    eras = meta["era"].to_numpy()
    label = meta[target].to_numpy(np.float32)
    known = ~np.isnan(label)
    train_rows = np.flatnonzero(np.isin(eras, fold.train_eras) & known)
    validation_rows = np.flatnonzero(np.isin(eras, fold.validation_eras))

    booster = train_booster(prepared, train_rows, label[train_rows], params, seed, on_progress)
    model_path, oof_path = fold_paths(models_dir, target, fold)
    save_booster(model_path, booster)

    held_out = FeatureRows(SelectedRows(prepared.data_path, fold.validation_eras), prepared.feature_names)
    if len(held_out) != len(validation_rows):
        raise DataError(f"{prepared.data_path}: changed since its rows were binned; run again to rebin")
    oof = pd.DataFrame(
        {
            "id": meta["id"].to_numpy()[validation_rows],
            "era": eras[validation_rows],
            "fold": fold.index,
            "prediction": predict_rows({target: [booster]}, held_out)[target].to_numpy(),
        }
    )
    with atomic_path(oof_path) as tmp:
        oof.to_parquet(tmp, index=False)
    return FoldResult(
        target=target,
        fold=fold.index,
        model_path=model_path,
        oof_path=oof_path,
        train_rows=len(train_rows),
        validation_rows=len(validation_rows),
        seconds=round(time.perf_counter() - started, 3),
        device_type=params.device_type,
        host=socket.gethostname(),
        pid=os.getpid(),
    )


def fit_fold_on_ladder(
    prepared: PreparedData,
    fold: Fold,
    target: str,
    ladder: list[FallbackStep],
    seed: int,
    models_dir: Path,
    cache: FoldCache | None = None,
    on_progress: ProgressReport | None = None,
) -> FoldResult:
    """Train on the first rung; a GPU error retries the fold on the next rung, down to the CPU.

    A fold already finished under the same key (data, fold, target, parameters, seed, code) on
    any rung is restored from `cache` instead. Every step down is recorded on the result.
    """
    keys = [fold_key(prepared.fingerprint, fold, target, step.params, seed) for step in ladder]
    if cache is not None:
        for key in keys:
            record = cache.lookup(key)
            if record is not None:
                model_path, oof_path = fold_paths(models_dir, target, fold)
                result = FoldResult.model_validate(record).model_copy(
                    update={"model_path": model_path, "oof_path": oof_path, "reused": True}
                )  # fmt: skip
                cache.restore(key, result.model_path, result.oof_path)
                return result
    result, position, downgrades = on_ladder(
        ladder, lambda step: fit_fold(prepared, fold, target, step.params, seed, models_dir, on_progress)
    )
    result = result.model_copy(update={"step": ladder[position].name, "downgrades": downgrades})
    if cache is not None:
        cache.store(keys[position], result.model_path, result.oof_path, result.model_dump(mode="json"))
    return result


def on_ladder(
    ladder: list[FallbackStep], attempt: Callable[[FallbackStep], T]
) -> tuple[T, int, list[dict[str, str]]]:
    """`attempt` on the first rung; a GPU error retries it on the next rung, down to the CPU.

    Returns the result, the rung it came from and every step down (from, to, error)."""
    downgrades: list[dict[str, str]] = []
    for position, step in enumerate(ladder):
        try:
            return attempt(step), position, downgrades
        except Exception as exc:
            last = position == len(ladder) - 1
            if last or not is_gpu_error(exc):
                raise
            downgrades.append(
                {
                    "from": step.name,
                    "to": ladder[position + 1].name,
                    "error": f"{type(exc).__name__}: {exc}"[:300],
                }
            )
    raise ValueError("an empty fallback ladder has nothing to train with")


def train_booster(
    prepared: PreparedData,
    rows: np.ndarray,
    label: np.ndarray,
    params: LightGBMParams,
    seed: int,
    on_progress: ProgressReport | None = None,
    weight: np.ndarray | None = None,
) -> lgb.Booster:
    """Train on `rows` (positions in the prepared rows) of the binned Dataset with `label` (and
    `weight`, when given); `on_progress(trees done, total)` is called after every tree."""
    keep_opencl_cache_ascii()
    # Bins are fixed once built: a fallback step with other dataset parameters (max_bin) trains on
    # them as they are (5-valued features give the same 5 bins for any max_bin >= 5).
    binned = lgb.Dataset(str(prepared.dataset_path), params=prepared.dataset_params).construct()
    if (binned.num_data(), binned.num_feature()) != (prepared.rows, len(prepared.feature_names)):
        raise DataError(
            f"{prepared.dataset_path}: holds {binned.num_data()} rows x {binned.num_feature()} features, "
            f"expected {prepared.rows} x {len(prepared.feature_names)}"
        )
    if len(rows) == prepared.rows:
        train_set = binned
    else:
        train_set = binned.subset(rows).construct()
        binned._free_handle()  # the subset holds its own copy of the bins; free the full set now
    train_set.set_label(label)  # only takes effect on a constructed Dataset
    if weight is not None:
        train_set.set_weight(weight)
    training_params = {**params.to_lightgbm(seed), **prepared.dataset_params}
    callbacks = [TreeProgress(on_progress)] if on_progress else None
    return lgb.train(training_params, train_set, num_boost_round=params.num_iterations, callbacks=callbacks)
