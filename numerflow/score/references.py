"""The predictions Numerai scores contribution against, read from the files it publishes next to
the data: the meta model (`meta_model.parquet`, for MMC) and the benchmark models
(`validation_benchmark_models.parquet`, for BMC). Either may be missing (the demo, offline,
an older data version): then the metric is not computed, and the reason says why.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from numerflow.data.files import parquet_schema
from numerflow.data.reference_files import BENCHMARK_FILE, META_MODEL_COLUMN, META_MODEL_FILE


class NotComputed(Exception):
    """A metric that cannot be computed on this data; the message is the one-line reason."""


def meta_model(version_dir: Path, ids: pd.Index) -> pd.Series:
    """The meta model's predictions for `ids` (NaN where it does not cover them)."""
    return _reference(version_dir / META_MODEL_FILE, META_MODEL_COLUMN, ids, "download Numerai's file again")


def benchmark_model(version_dir: Path, column: str, ids: pd.Index) -> pd.Series:
    """Benchmark model `column`'s predictions for `ids` (NaN where it does not cover them)."""
    return _reference(
        version_dir / BENCHMARK_FILE, column, ids, "set training.yaml scoring.benchmark_model to one of them"
    )


def _reference(path: Path, column: str, ids: pd.Index, fix: str) -> pd.Series:
    if not path.is_file():
        raise NotComputed(f"{path.name} is not in {path.parent} (training.yaml numerai.download fetches it)")
    names = parquet_schema(path).names
    if column not in names:
        others = [n for n in names if n not in ("id", "era", "data_type")]
        raise NotComputed(f"{path.name} has no column {column} (it has {others[:8]}); {fix}")
    table = pq.read_table(path, columns=["id", column])
    values = pd.Series(
        table[column].to_numpy(zero_copy_only=False),
        index=pd.Index(table["id"].to_numpy(zero_copy_only=False).astype(str)),
    )
    covered = values.reindex(ids)
    if covered.notna().sum() == 0:
        raise NotComputed(f"{path.name} covers none of the scored validation rows")
    return covered
