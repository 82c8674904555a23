"""Rows of a Numerai parquet file, read one row group at a time and never all at once.

`SelectedRows` fixes which rows take part (the chosen eras, in file order) from the era column
alone; `FeatureRows` serves their int8 features to LightGBM as a `lightgbm.Sequence` (random
rows for the bin sample, then consecutive float32 batches) and to prediction as int8 blocks.
Every step that must line rows up (the binned Dataset, the id/era/target table, out-of-fold and
validation predictions) reads through these two, so they agree on the order by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from numerflow.data.files import DataError, int8_matrix, parquet_schema, reading_rows, to_era_numbers
from numerflow.progress import ProgressReport

BATCH_BYTES = 64 * 2**20  # float32 bytes per batch handed to LightGBM or to prediction


class SelectedRows:
    """The rows of `path` whose era is in `eras` (all rows when None), in file order."""

    def __init__(self, path: Path, eras: Iterable[int] | None = None) -> None:
        self.path = Path(path)
        self.schema = parquet_schema(self.path)
        self._file = pq.ParquetFile(self.path)
        wanted = None if eras is None else np.asarray(sorted(set(eras)), dtype=np.int64)
        self.masks: list[np.ndarray] = []
        for group in range(self._file.num_row_groups):
            if wanted is None:
                self.masks.append(np.ones(self._file.metadata.row_group(group).num_rows, dtype=bool))
                continue
            with reading_rows(self.path):
                raw = self._file.read_row_group(group, columns=["era"])["era"].to_numpy(zero_copy_only=False)
            self.masks.append(np.isin(to_era_numbers(self.path, raw), wanted))
        counts = np.array([mask.sum() for mask in self.masks], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(counts)])

    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def largest_group_rows(self) -> int:
        """Rows decoded at once: the biggest row group that has a selected row."""
        return max((len(m) for m in self.masks if m.any()), default=0)

    def require(self, columns: list[str]) -> None:
        missing = [name for name in columns if name not in self.schema.names]
        if missing:
            raise DataError(f"{self.path}: missing columns {missing[:5]}{' ...' if len(missing) > 5 else ''}")

    def group(self, index: int, columns: list[str]) -> pa.Table:
        with reading_rows(self.path):
            table = self._file.read_row_group(index, columns=columns)
        mask = self.masks[index]
        return table if mask.all() else table.filter(pa.array(mask))

    def groups(self) -> Iterator[int]:
        """Indexes of the row groups that hold selected rows."""
        return (i for i in range(len(self.masks)) if self.starts[i + 1] > self.starts[i])

    def table(self, columns: list[str]) -> pa.Table:
        """Small columns (ids, eras, targets) of every selected row."""
        self.require(columns)
        parts = [self.group(i, columns) for i in self.groups()]
        if not parts:
            return self._file.schema_arrow.empty_table().select(columns)
        return pa.concat_tables(parts)


def batch_rows(rows: SelectedRows, n_features: int) -> int:
    """Rows per float32 batch: at most BATCH_BYTES, and never more than a row group."""
    widest = max(1, BATCH_BYTES // (4 * max(1, n_features)))
    return max(1, min(widest, rows.largest_group_rows or 1))


class FeatureRows(lgb.Sequence):
    """Selected rows' int8 features, one row group decoded at a time.

    `on_progress(rows served, rows)` follows the batches LightGBM pushes while it bins: it reads
    them one after another, after its sample of single rows."""

    def __init__(
        self, rows: SelectedRows, features: list[str], on_progress: ProgressReport | None = None
    ) -> None:
        rows.require(features)
        self.rows = rows
        self.features = list(features)
        self.batch_size = batch_rows(rows, len(features))  # read by LightGBM
        self.on_progress = on_progress
        self._cached: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx: int | slice) -> np.ndarray:
        # LightGBM samples single rows (sorted) as float64, then pushes float32 batches.
        if isinstance(idx, (int, np.integer)):
            position = int(idx) + (len(self) if idx < 0 else 0)
            if not 0 <= position < len(self):
                raise IndexError(f"row {idx} out of range for {len(self)} rows")
            group = int(np.searchsorted(self.rows.starts, position, side="right")) - 1
            return self.matrix(group)[position - self.rows.starts[group]].astype(np.float64)
        if isinstance(idx, slice):
            start, stop, step = idx.indices(len(self))
            if step != 1:
                raise IndexError("FeatureRows slices must be contiguous")
            batch = self.block(start, stop).astype(np.float32)
            if self.on_progress is not None:
                self.on_progress(stop, len(self))
            return batch
        raise TypeError(f"FeatureRows index must be an int or a slice, got {type(idx).__name__}")

    def matrix(self, group: int) -> np.ndarray:
        """The selected rows of one row group as an int8 matrix (validated, nulls filled)."""
        if self._cached is None or self._cached[0] != group:
            self._cached = None  # drop the old group before decoding the next
            table = self.rows.group(group, self.features)
            self._cached = (group, int8_matrix(self.rows.path, table, self.features))
        return self._cached[1]

    def block(self, start: int, stop: int) -> np.ndarray:
        """Int8 features of selected rows [start, stop), possibly spanning row groups."""
        starts = self.rows.starts
        parts = []
        first = int(np.searchsorted(starts, start, side="right")) - 1
        for group in range(max(first, 0), len(starts) - 1):
            if starts[group] >= stop:
                break
            low, high = max(start, starts[group]), min(stop, starts[group + 1])
            if high > low:
                parts.append(self.matrix(group)[low - starts[group] : high - starts[group]])
        if not parts:
            return np.empty((0, len(self.features)), dtype=np.int8)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def blocks(self) -> Iterator[np.ndarray]:
        """Consecutive int8 blocks of at most `batch_size` rows, in order."""
        for start in range(0, len(self), self.batch_size):
            yield self.block(start, min(start + self.batch_size, len(self)))
