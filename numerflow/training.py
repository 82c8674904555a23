"""LightGBM fold training on a Dataset binned once per run.

`prepare_training_data` writes the training rows into the run directory once: the int8
feature matrix (memory-mappable `.npy`), a small table of ids, eras and targets, and the
LightGBM Dataset binned from them (`save_binary`). Every fold x target then loads the binned
Dataset, takes the subset of its training rows, sets that target as label and trains, so the
bins are built once however many folds and targets there are. Steps exchange paths, never
large objects.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from numerflow.config.models import LightGBMParams
from numerflow.data import NumeraiFrame
from numerflow.foldcache import FoldCache, fold_key
from numerflow.folds import Fold
from numerflow.io import atomic_path
from numerflow.tiers import TierStep, is_gpu_error


class PreparedData(BaseModel):
    """Paths of one run's training rows; small enough to pass between Prefect tasks."""

    model_config = ConfigDict(frozen=True)

    features_path: Path
    meta_path: Path
    dataset_path: Path
    feature_names: list[str]
    targets: list[str]
    rows: int
    eras: list[int]
    fingerprint: str  # content hash of the rows, features and targets


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


def prepare_training_data(
    frame: NumeraiFrame, targets: list[str], params: LightGBMParams, directory: Path
) -> PreparedData:
    directory.mkdir(parents=True, exist_ok=True)
    features_path = directory / "features.npy"
    with atomic_path(features_path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.ascontiguousarray(frame.features, dtype=np.int8))
    meta = frame.targets[targets].copy()
    meta.insert(0, "era", frame.eras)
    meta.insert(0, "id", frame.ids)
    meta_path = directory / "meta.parquet"
    with atomic_path(meta_path) as tmp:
        meta.to_parquet(tmp, index=False)

    dataset_path = directory / "train.bin"
    main_label = np.nan_to_num(frame.targets[targets[0]].to_numpy(np.float32), nan=0.5)
    dataset = lgb.Dataset(
        frame.features,
        label=main_label,
        feature_name=frame.feature_names,
        params=params.dataset_params(),
        free_raw_data=True,
    ).construct()
    with atomic_path(dataset_path) as tmp:
        tmp.unlink()  # LightGBM refuses to overwrite an existing file
        dataset.save_binary(str(tmp))
    return PreparedData(
        features_path=features_path,
        meta_path=meta_path,
        dataset_path=dataset_path,
        feature_names=frame.feature_names,
        targets=targets,
        rows=len(frame),
        eras=sorted({int(e) for e in frame.eras}),
        fingerprint=_fingerprint(frame, targets),
    )


def _fingerprint(frame: NumeraiFrame, targets: list[str]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps(frame.feature_names).encode())
    digest.update(np.ascontiguousarray(frame.features).data)
    digest.update("\n".join(frame.ids.tolist()).encode())
    digest.update(np.asarray(frame.eras, dtype=np.int64).tobytes())
    for target in targets:
        digest.update(target.encode())
        digest.update(frame.targets[target].to_numpy(np.float32).tobytes())
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

    booster = _train(prepared, train_rows, label[train_rows], params, seed)
    model_path, oof_path = fold_paths(models_dir, target, fold)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(model_path) as tmp:
        booster.save_model(str(tmp))

    features = np.load(prepared.features_path, mmap_mode="r")
    oof = pd.DataFrame(
        {
            "id": meta["id"].to_numpy()[validation_rows],
            "era": eras[validation_rows],
            "fold": fold.index,
            "prediction": booster.predict(features[validation_rows]),
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


def _train(
    prepared: PreparedData, rows: np.ndarray, label: np.ndarray, params: LightGBMParams, seed: int
) -> lgb.Booster:
    binned = lgb.Dataset(str(prepared.dataset_path), params=params.dataset_params()).construct()
    subset = binned.subset(rows).construct()
    subset.set_label(label)  # only takes effect on a constructed subset
    return lgb.train(params.to_lightgbm(seed), subset, num_boost_round=params.n_estimators)


def load_oof(results: list[FoldResult], targets: list[str]) -> pd.DataFrame:
    """Out-of-fold predictions indexed by id: `era`, `fold`, and one column per target."""
    frames = []
    for target in targets:
        parts = [pd.read_parquet(r.oof_path) for r in results if r.target == target]
        frame = pd.concat(parts).set_index("id").rename(columns={"prediction": target})
        frames.append(frame if not frames else frame[[target]])
    return pd.concat(frames, axis=1, join="inner").sort_values(["era", "fold"], kind="stable")


def predict(model_paths: dict[str, list[Path]], features: np.ndarray) -> pd.DataFrame:
    """Each base model's prediction: the mean of its fold models, one column per target."""
    columns = {}
    for target, paths in model_paths.items():
        fold_predictions = [lgb.Booster(model_file=str(p)).predict(features) for p in paths]
        columns[target] = np.mean(fold_predictions, axis=0)
    return pd.DataFrame(columns)
