"""Fix a run's training rows and get their bins built once, for every fold and target.

`bin_training_rows` fixes the training rows (the chosen eras of the parquet file, in file
order), writes their ids, eras and targets to a small table, and gets the binned Dataset from
the bins cache, building it by the lean loader the memory guard picks when it is missing.
`bin_rows` does the same for rows of several files, one after the other (the final model's
train + validation rows), in one pass. Steps exchange paths, never large objects."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from numerflow.config.models import LightGBMParams, Loader
from numerflow.data.binned import Bins, BinsCache, BinsRecord, bins_key, build_dataset, save_dataset
from numerflow.data.files import DataError, to_era_numbers
from numerflow.data.memory import DataShape, MemoryPlan, plan_memory
from numerflow.data.rows import SelectedRows, batch_rows
from numerflow.io import atomic_path
from numerflow.progress import ProgressReport


class RowPart(BaseModel):
    """The chosen eras of one parquet file (all of them when None)."""

    model_config = ConfigDict(frozen=True)

    path: Path
    eras: list[int] | None = None

    def rows(self) -> SelectedRows:
        return SelectedRows(self.path, self.eras)


class PreparedData(BaseModel):
    """Paths of one run's training rows; small enough to pass between Prefect tasks."""

    model_config = ConfigDict(frozen=True)

    parts: list[RowPart]  # the files the rows come from, in Dataset order, with their eras
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

    @property
    def data_path(self) -> Path:
        """The first file's path: the only one of a fold run's rows."""
        return self.parts[0].path


def bin_training_rows(
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
    on_progress: ProgressReport | None = None,
) -> PreparedData:
    """Fix the training rows of `path` (all eras, or `eras`) and get their bins built once;
    `on_progress(rows binned, rows)` follows the binning when the bins are built here."""
    return bin_rows(
        [RowPart(path=path, eras=eras)],
        features,
        targets,
        params,
        directory,
        bins_dir,
        loader=loader,
        train_fraction=train_fraction,
        available=available,
        on_progress=on_progress,
    )


def bin_rows(
    parts: list[RowPart],
    features: list[str],
    targets: list[str],
    params: LightGBMParams,
    directory: Path,
    bins_dir: Path,
    loader: Loader = "auto",
    train_fraction: float = 1.0,
    available: tuple[int, str] | None = None,
    on_progress: ProgressReport | None = None,
) -> PreparedData:
    """Fix the rows of `parts` (file after file) and get their bins built once, in one pass."""
    selected = [part.rows() for part in parts]
    for part, rows in zip(parts, selected, strict=True):
        if len(rows) == 0:
            raise DataError(f"{part.path}: no training rows in the selected eras")
    metas = [_meta(rows, targets) for rows in selected]
    meta = pd.concat(metas, ignore_index=True)
    directory.mkdir(parents=True, exist_ok=True)
    meta_path = directory / "meta.parquet"
    with atomic_path(meta_path) as tmp:
        meta.to_parquet(tmp, index=False)

    shape = data_shape(selected, features, params.bin_construct_sample_cnt, train_fraction)
    era_list = _era_list(meta)
    cache = BinsCache(bins_dir)
    key = bins_key(
        [(rows.path, _era_list(m)) for rows, m in zip(selected, metas, strict=True)],
        features,
        params.dataset_params(),
    )
    label = _main_label(meta, targets)
    record, built, plan = _get_bins(
        cache, key, selected, features, label, params.dataset_params(), shape, loader, available, on_progress
    )
    return PreparedData(
        parts=list(parts),
        meta_path=meta_path,
        feature_names=list(features),
        targets=list(targets),
        rows=len(meta),
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
    rows = [part.rows() for part in prepared.parts]
    meta = pd.read_parquet(prepared.meta_path)
    shape = data_shape(rows, prepared.feature_names, int(prepared.dataset_params["bin_construct_sample_cnt"]))
    cache = BinsCache(prepared.dataset_path.parent.parent)
    label = _main_label(meta, prepared.targets)
    _, built, _ = _get_bins(
        cache, record.key, rows, prepared.feature_names, label, prepared.dataset_params, shape, "auto", None
    )
    return built


def data_shape(
    parts: list[SelectedRows], features: list[str], sample_cnt: int, train_fraction: float = 1.0
) -> DataShape:
    """What the memory guard sizes: the rows of every part, read one row group at a time."""
    total = sum(len(rows) for rows in parts)
    return DataShape(
        rows=total,
        features=len(features),
        sample_rows=min(sample_cnt, total),
        group_rows=max(rows.largest_group_rows for rows in parts),
        batch_rows=max(batch_rows(rows, len(features)) for rows in parts),
        train_fraction=train_fraction,
    )


def _main_label(meta: pd.DataFrame, targets: list[str]) -> np.ndarray:
    # The stored label is a placeholder: every fold sets its own target before training.
    return np.nan_to_num(meta[targets[0]].to_numpy(np.float32), nan=0.5)


def _get_bins(
    cache: BinsCache,
    key: str,
    parts: list[SelectedRows],
    features: list[str],
    label: np.ndarray,
    dataset_params: dict[str, Any],
    shape: DataShape,
    loader: Loader,
    available: tuple[int, str] | None,
    on_progress: ProgressReport | None = None,
) -> tuple[BinsRecord, bool, MemoryPlan]:
    """The cached bins for `key`, built (after the memory guard picks a loader) when missing."""
    plans: list[MemoryPlan] = []

    def build(out: Path) -> tuple[int, int, str]:
        plans.append(plan_memory(shape, loader, available))
        save_dataset(build_dataset(parts, features, label, dataset_params, plans[0].loader, on_progress), out)
        return sum(len(rows) for rows in parts), len(features), plans[0].loader

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


def _era_list(meta: pd.DataFrame) -> list[int]:
    return sorted({int(e) for e in meta["era"]})


def _fingerprint(bins: str, meta: pd.DataFrame) -> str:
    digest = hashlib.blake2b(bins.encode(), digest_size=16)
    digest.update(pd.util.hash_pandas_object(meta, index=False).to_numpy().tobytes())
    return digest.hexdigest()
