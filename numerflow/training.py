"""LightGBM fold training on a Dataset binned once and shared by every fold and target.

`prepare_training_data` fixes the training rows (the chosen eras of the parquet file, in file
order), writes their ids, eras and targets to a small table, and gets the binned Dataset from
the bins cache, building it by the lean loader the memory guard picks when it is missing. Every
fold x target then loads that Dataset, takes the subset of its training rows, sets the target
as label and trains; its out-of-fold rows are read back from parquet one row group at a time.
Steps exchange paths, never large objects.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from numerflow.binned import Bins, BinsCache, BinsRecord, bins_key, build_dataset, save_dataset
from numerflow.config.models import LightGBMParams, Loader
from numerflow.data import DataError, to_era_numbers
from numerflow.foldcache import FoldCache, fold_key
from numerflow.folds import Fold
from numerflow.io import atomic_path
from numerflow.memory import DataShape, MemoryPlan, plan_memory
from numerflow.rows import FeatureRows, SelectedRows, batch_rows
from numerflow.tiers import TierStep, is_gpu_error


class PreparedData(BaseModel):
    """Paths of one run's training rows; small enough to pass between Prefect tasks."""

    model_config = ConfigDict(frozen=True)

    data_path: Path  # the parquet file the rows come from
    meta_path: Path  # id, era and targets of every training row, in Dataset order
    feature_names: list[str]
    targets: list[str]
    rows: int
    eras: list[int]
    fingerprint: str  # the bins' key plus the content of ids, eras and targets
    dataset_params: dict[str, Any]  # what the bins were built with; every fold loads them with these
    bins: Bins

    @property
    def dataset_path(self) -> Path:
        """The binned Dataset, in the bins cache."""
        return self.bins.path


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
    tier: str = ""
    downgrades: list[dict[str, str]] = []
    reused: bool = False  # restored from the fold cache instead of trained
    host: str = ""  # where it was trained (a Dask worker's host when scaled out)
    pid: int = 0


def prepare_training_data(
    path: Path,
    features: list[str],
    targets: list[str],
    params: LightGBMParams,
    directory: Path,
    bins_dir: Path,
    eras: list[int] | None = None,
    loader: Loader = "auto",
    train_fraction: float = 1.0,
    available: tuple[int, str] | None = None,
) -> PreparedData:
    """Fix the training rows of `path` (all eras, or `eras`) and get their bins built once."""
    rows = SelectedRows(path, eras)
    if len(rows) == 0:
        raise DataError(f"{path}: no training rows in the selected eras")
    meta = _meta(rows, targets)
    directory.mkdir(parents=True, exist_ok=True)
    meta_path = directory / "meta.parquet"
    with atomic_path(meta_path) as tmp:
        meta.to_parquet(tmp, index=False)

    shape = _data_shape(rows, features, params.bin_construct_sample_cnt, train_fraction)
    era_list = sorted({int(e) for e in meta["era"]})
    cache = BinsCache(bins_dir)
    key = bins_key(path, features, era_list, params.dataset_params())
    label = _main_label(meta, targets)
    record, built, plan = _get_bins(
        cache, key, rows, features, label, params.dataset_params(), shape, loader, available
    )
    return PreparedData(
        data_path=path,
        meta_path=meta_path,
        feature_names=list(features),
        targets=list(targets),
        rows=len(rows),
        eras=era_list,
        fingerprint=_fingerprint(key, meta),
        dataset_params=params.dataset_params(),
        bins=Bins(path=cache.path(key), record=record, built=built, plan=plan),
    )


def ensure_bins(prepared: PreparedData) -> bool:
    """Make sure this machine sees the run's bins; rebuild them under their key if it does not.

    A Dask worker whose disk lacks the bins (or holds a damaged copy) builds them itself; the
    cache's lock and atomic rename keep concurrent builders from ever exposing a partial entry.
    Returns whether this call built them.
    """
    record = prepared.bins.record
    if prepared.dataset_path.is_file() and prepared.dataset_path.stat().st_size == record.bytes:
        return False
    rows = SelectedRows(prepared.data_path, prepared.eras)
    meta = pd.read_parquet(prepared.meta_path)
    shape = _data_shape(
        rows, prepared.feature_names, int(prepared.dataset_params["bin_construct_sample_cnt"])
    )
    cache = BinsCache(prepared.dataset_path.parent.parent)
    label = _main_label(meta, prepared.targets)
    _, built, _ = _get_bins(
        cache, record.key, rows, prepared.feature_names, label, prepared.dataset_params, shape, "auto", None
    )
    return built


def _data_shape(
    rows: SelectedRows, features: list[str], sample_cnt: int, train_fraction: float = 1.0
) -> DataShape:
    return DataShape(
        rows=len(rows),
        features=len(features),
        sample_rows=min(sample_cnt, len(rows)),
        group_rows=rows.largest_group_rows,
        batch_rows=batch_rows(rows, len(features)),
        train_fraction=train_fraction,
    )


def _main_label(meta: pd.DataFrame, targets: list[str]) -> np.ndarray:
    # The stored label is a placeholder: every fold sets its own target before training.
    return np.nan_to_num(meta[targets[0]].to_numpy(np.float32), nan=0.5)


def _get_bins(
    cache: BinsCache,
    key: str,
    rows: SelectedRows,
    features: list[str],
    label: np.ndarray,
    dataset_params: dict[str, Any],
    shape: DataShape,
    loader: Loader,
    available: tuple[int, str] | None,
) -> tuple[BinsRecord, bool, MemoryPlan]:
    """The cached bins for `key`, built (after the memory guard picks a loader) when missing."""
    plans: list[MemoryPlan] = []

    def build(out: Path) -> tuple[int, int, str]:
        plans.append(plan_memory(shape, loader, available))
        save_dataset(build_dataset(rows, features, label, dataset_params, plans[0].loader), out)
        return len(rows), len(features), plans[0].loader

    record, built = cache.get_or_build(key, build)
    if not built:  # the bins exist; fold training still has to fit
        plans.append(plan_memory(shape, loader, available, build=False))
    return record, built, plans[0]


def _meta(rows: SelectedRows, targets: list[str]) -> pd.DataFrame:
    table = rows.table(["id", "era", *targets])
    return pd.DataFrame(
        {
            "id": table["id"].to_numpy(zero_copy_only=False).astype(str),
            "era": to_era_numbers(rows.path, table["era"].to_numpy(zero_copy_only=False)),
            **{t: table[t].to_numpy(zero_copy_only=False).astype(np.float32) for t in targets},
        }
    )


def _fingerprint(bins: str, meta: pd.DataFrame) -> str:
    digest = hashlib.blake2b(bins.encode(), digest_size=16)
    digest.update(pd.util.hash_pandas_object(meta, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def fold_paths(models_dir: Path, target: str, fold: Fold) -> tuple[Path, Path]:
    """Where a fold's model and out-of-fold predictions live in a run."""
    folder = models_dir / target
    return folder / f"fold_{fold.index}.txt", folder / f"fold_{fold.index}_oof.parquet"


def train_fold(
    prepared: PreparedData,
    fold: Fold,
    target: str,
    params: LightGBMParams,
    seed: int,
    models_dir: Path,
) -> FoldResult:
    """Train `target` on the fold's training eras; predict its validation eras (out of fold)."""
    started = time.perf_counter()
    meta = pd.read_parquet(prepared.meta_path)
    eras = meta["era"].to_numpy()
    label = meta[target].to_numpy(np.float32)
    known = ~np.isnan(label)
    train_rows = np.flatnonzero(np.isin(eras, fold.train_eras) & known)
    validation_rows = np.flatnonzero(np.isin(eras, fold.validation_eras))

    booster = train_booster(prepared, train_rows, label[train_rows], params, seed)
    model_path, oof_path = fold_paths(models_dir, target, fold)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(model_path) as tmp:
        booster.save_model(str(tmp))

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


def train_fold_on_ladder(
    prepared: PreparedData,
    fold: Fold,
    target: str,
    ladder: list[TierStep],
    seed: int,
    models_dir: Path,
    cache: FoldCache | None = None,
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
    downgrades: list[dict[str, str]] = []
    for position, step in enumerate(ladder):
        try:
            result = train_fold(prepared, fold, target, step.params, seed, models_dir)
        except Exception as exc:
            last = position == len(ladder) - 1
            if last or not is_gpu_error(exc):
                raise
            downgrades.append(
                {
                    "from": step.tier,
                    "to": ladder[position + 1].tier,
                    "error": f"{type(exc).__name__}: {exc}"[:300],
                }
            )
            continue
        result = result.model_copy(update={"tier": step.tier, "downgrades": downgrades})
        if cache is not None:
            cache.store(keys[position], result.model_path, result.oof_path, result.model_dump(mode="json"))
        return result
    raise ValueError("an empty tier ladder has nothing to train with")


def train_booster(
    prepared: PreparedData, rows: np.ndarray, label: np.ndarray, params: LightGBMParams, seed: int
) -> lgb.Booster:
    """Train on `rows` (positions in the prepared rows) of the binned Dataset with `label`."""
    # Bins are fixed once built: a tier step with other dataset parameters (max_bin) trains on
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
    training_params = {**params.to_lightgbm(seed), **prepared.dataset_params}
    return lgb.train(training_params, train_set, num_boost_round=params.n_estimators)


def load_oof(results: list[FoldResult], targets: list[str]) -> pd.DataFrame:
    """Out-of-fold predictions indexed by id: `era`, `fold`, and one column per target."""
    frames = []
    for target in targets:
        parts = [pd.read_parquet(r.oof_path) for r in results if r.target == target]
        frame = pd.concat(parts).set_index("id").rename(columns={"prediction": target})
        frames.append(frame if not frames else frame[[target]])
    return pd.concat(frames, axis=1, join="inner").sort_values(["era", "fold"], kind="stable")


Models = dict[str, list[lgb.Booster]]  # fold models per target


def load_models(model_paths: dict[str, list[Path]]) -> Models:
    return {target: [lgb.Booster(model_file=str(p)) for p in paths] for target, paths in model_paths.items()}


def predict_matrix(models: Models, features: np.ndarray) -> pd.DataFrame:
    """Each base model's prediction: the mean of its fold models, one column per target."""
    return pd.DataFrame(
        {
            target: np.mean([b.predict(features) for b in boosters], axis=0)
            for target, boosters in models.items()
        }
    )


def predict(model_paths: dict[str, list[Path]], features: np.ndarray) -> pd.DataFrame:
    return predict_matrix(load_models(model_paths), features)


def predict_rows(models: Models, rows: FeatureRows) -> pd.DataFrame:
    """Predictions for rows read batch by batch, so the features are never all in memory."""
    parts = [predict_matrix(models, block) for block in rows.blocks()]
    if not parts:
        return pd.DataFrame({target: np.empty(0) for target in models})
    return pd.concat(parts, ignore_index=True)
