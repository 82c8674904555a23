"""Bins built once: a LightGBM Dataset binned from parquet without a float copy, and its cache.

Two loaders build the Dataset, and neither ever holds a float copy of the whole matrix (which
is what pandas or numpy input costs: 4 bytes a cell inside LightGBM):

* `arrow`: the selected rows as an int8 Arrow table, which LightGBM reads natively and bins
  column-parallel. Fastest; holds the int8 matrix (1 byte a cell) until the bins are built.
* `stream`: a `lightgbm.Sequence` over the parquet row groups; one row group and one float32
  batch are in memory at a time. Lowest peak; for data that the Arrow path would not fit.

The binned Dataset is saved once under a key of everything that shapes it (the source file's
identity, the features, the selected eras, the dataset parameters, LightGBM's version) and
reused by every fold and target of the run and by later runs. An entry is written to a private
folder and renamed into place when complete, under a file lock, so concurrent runs (or Dask
workers on a shared disk) never see or build a half-written one; an entry whose file does not
match its recorded size and digest is rebuilt, never used. A full disk during the build raises
`DiskFullError` naming the entry, and the private folder is removed.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pyarrow as pa
from filelock import FileLock
from pydantic import BaseModel, ConfigDict

from numerflow.cachedirs import prune_entries
from numerflow.data.memory import MemoryPlan
from numerflow.data.rows import FeatureRows, SelectedRows
from numerflow.io import naming_full_disk, replace_with_retry, write_json_atomic
from numerflow.progress import ProgressReport

BINS_FILE = "train.bin"
RECORD_FILE = "bins.json"
KEEP_DAYS = 21
STAGING_KEEP_DAYS = 1  # a build killed mid-way leaves its private folder; nothing reads it
# LightGBM's save_binary ignores failed writes (4.7.0, measured: a save onto a full 64 KiB tmpfs
# returned normally and left a 64 KiB file), so a disk this close to full after a save means
# the file may be short.
FULL_AFTER_SAVE_BYTES = 1 << 20

BuildFn = Callable[[Path], tuple[int, int, str]]  # writes the .bin; returns rows, features, loader


class BinsRecord(BaseModel):
    """A complete cache entry: what was binned, how, and the digest of the saved file."""

    model_config = ConfigDict(frozen=True)

    key: str
    rows: int
    features: int
    loader: str
    construct_seconds: float
    bytes: int
    digest: str


class Bins(BaseModel):
    """Where a run's binned Dataset is, and whether this run had to build it."""

    model_config = ConfigDict(frozen=True)

    path: Path
    record: BinsRecord
    built: bool  # False: reused from the cache
    plan: MemoryPlan  # the memory guard's figures for this run


def source_identity(path: Path) -> dict[str, object]:
    """Cheap identity of a parquet file: size, modification time and a digest of its footer.

    The footer holds every row group's sizes and column statistics, so any rewrite changes it;
    hashing its raw bytes costs one small read.
    """
    stat = path.stat()
    with open(path, "rb") as handle:
        handle.seek(-8, os.SEEK_END)
        length = int.from_bytes(handle.read(4), "little")  # then the magic bytes PAR1
        handle.seek(-8 - length, os.SEEK_END)
        footer = hashlib.blake2b(handle.read(length), digest_size=16).hexdigest()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "footer": footer}


def bins_key(
    parts: list[tuple[Path, list[int]]], features: list[str], dataset_params: dict[str, object]
) -> str:
    """The cache key of the rows of `parts` (file, eras), binned one file after the other."""
    sources = [{"source": source_identity(path), "eras": eras} for path, eras in parts]
    # One file keeps the key it always had, so existing cache entries stay valid.
    rows = sources[0] if len(sources) == 1 else {"sources": sources}
    payload = {**rows, "features": features, "dataset_params": dataset_params, "lightgbm": lgb.__version__}
    return hashlib.blake2b(json.dumps(payload, sort_keys=True).encode(), digest_size=16).hexdigest()


def build_dataset(
    parts: list[SelectedRows],
    features: list[str],
    label: np.ndarray,
    dataset_params: dict[str, object],
    loader: str,
    on_progress: ProgressReport | None = None,
) -> lgb.Dataset:
    """Bin the selected rows of `parts` (one file's after the other's) by `loader` ("arrow" or
    "stream"); returns a constructed Dataset. LightGBM takes a list of Sequences as one data
    set, so several files are streamed without concatenating them in memory.

    `on_progress(rows binned, rows)` follows the stream loader's batches. The Arrow loader bins
    in one call into LightGBM, so it reports an unknown total (0) until that call returns."""
    streamed = loader != "arrow"
    total = sum(len(rows) for rows in parts)
    if on_progress is not None:
        on_progress(0, total if streamed else 0)
    starts = np.cumsum([0, *(len(rows) for rows in parts)])
    data: pa.Table | list[FeatureRows] = (
        [
            FeatureRows(rows, features, _after(on_progress, int(start), total))
            for rows, start in zip(parts, starts, strict=False)  # starts has one more
        ]
        if streamed
        else arrow_features(parts, features)
    )
    dataset = lgb.Dataset(
        data, label=label, feature_name=features, params=dataset_params, free_raw_data=True
    ).construct()
    del data
    pa.default_memory_pool().release_unused()
    if on_progress is not None and not streamed:
        on_progress(total, total)
    return dataset


def _after(report: ProgressReport | None, start: int, total: int) -> ProgressReport | None:
    """One file's progress as part of all of them: its rows come after `start` others."""
    if report is None:
        return None
    return lambda done, _: report(start + done, total)


def arrow_features(parts: list[SelectedRows], features: list[str]) -> pa.Table:
    """The selected rows' features as an int8 Arrow table, one chunk per row group."""
    batches = []
    for rows in parts:
        reader = FeatureRows(rows, features)
        for group in rows.groups():
            matrix = reader.matrix(group)  # column-major, so each column is contiguous: no copy
            batches.append(
                pa.record_batch([pa.array(matrix[:, j]) for j in range(len(features))], names=features)
            )
    schema = pa.schema([(name, pa.int8()) for name in features])
    return pa.Table.from_batches(batches, schema=schema)


class BinsCache:
    """Saved binned Datasets under `root/<key>/`, shared by runs (and by workers on one disk)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def lookup(self, key: str) -> BinsRecord | None:
        """The complete, intact entry for `key`; a damaged one is removed and None returned."""
        entry = self.root / key
        if not entry.exists():
            return None
        record = _read_record(entry)
        if record is None or record.key != key or not _intact(entry / BINS_FILE, record):
            shutil.rmtree(entry, ignore_errors=True)
            return None
        (entry / RECORD_FILE).touch()  # keep entries that are in use
        return record

    def path(self, key: str) -> Path:
        return self.root / key / BINS_FILE

    def get_or_build(self, key: str, build: BuildFn) -> tuple[BinsRecord, bool]:
        """The entry for `key`, built by `build(path) -> (rows, features, loader)` if missing.

        Returns the record and whether this call built it.
        """
        record = self.lookup(key)
        if record is not None:
            return record, False
        self.root.mkdir(parents=True, exist_ok=True)
        # filelock: flock on POSIX (Linux NFS maps it to NFS locks), LockFileEx on Windows.
        with FileLock(self.root / f".{key}.lock"):
            record = self.lookup(key)  # built by another process while this one waited
            if record is not None:
                return record, False
            staging = self.root / f".{key}.{uuid.uuid4().hex}.tmp"
            staging.mkdir()
            try:
                with naming_full_disk(self.path(key)):
                    started = time.perf_counter()
                    rows, features, loader = build(staging / BINS_FILE)
                    record = BinsRecord(
                        key=key,
                        rows=rows,
                        features=features,
                        loader=loader,
                        construct_seconds=round(time.perf_counter() - started, 3),
                        bytes=(staging / BINS_FILE).stat().st_size,
                        digest=_file_digest(staging / BINS_FILE),
                    )
                    write_json_atomic(staging / RECORD_FILE, record.model_dump())
                    replace_with_retry(staging, self.root / key)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            return record, True

    def prune(self, keep_days: float = KEEP_DAYS) -> int:
        """Remove entries unused for `keep_days` and staging folders of dead builds."""
        return prune_entries(self.root, RECORD_FILE, keep_days, STAGING_KEEP_DAYS)


def save_dataset(dataset: lgb.Dataset, path: Path) -> None:
    path.unlink(missing_ok=True)  # LightGBM refuses to overwrite a file
    dataset.save_binary(str(path))
    if shutil.disk_usage(path.parent).free < FULL_AFTER_SAVE_BYTES:
        raise OSError(errno.ENOSPC, "the disk is full after LightGBM saved the bins", str(path))


def _read_record(entry: Path) -> BinsRecord | None:
    try:
        return BinsRecord.model_validate_json((entry / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _intact(path: Path, record: BinsRecord) -> bool:
    try:
        return path.stat().st_size == record.bytes and _file_digest(path) == record.digest
    except OSError:
        return False


def _file_digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, lambda: hashlib.blake2b(digest_size=16)).hexdigest()
