"""Memory guard: estimate the peak of binning the training data before loading any of it.

The per-cell costs are LightGBM 4.7 measurements on Numerai-shaped int8 data (see
docs/benchmarks.md): a binned Dataset holds about 1 byte per cell while it is built, the
sample used to find bin edges costs about 11.4 bytes per sampled cell, and the Arrow path also
holds the whole int8 matrix (1 byte per cell) until the Dataset is built. The stream path holds
one parquet row group and one float32 batch instead. If neither fits the memory that is free,
the run stops here with the figures and the knobs that shrink the data, instead of being killed
by the kernel's OOM killer halfway through.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys
from pathlib import Path
from typing import Literal

import psutil
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from numerflow.config.models import Loader

GIB = 2**30

DATASET_BYTES_PER_CELL = 1.1  # binned Dataset while being built (data + push buffer, 4-bit each)
LOADED_BYTES_PER_CELL = 1.0  # binned Dataset loaded from its saved file, and a fold's subset of it
SAMPLE_BYTES_PER_CELL = 11.4  # bin_construct_sample_cnt rows x features, as float64 + indices
INT8_BYTES_PER_CELL = 1.0  # the feature matrix the Arrow path hands to LightGBM
DECODE_BYTES_PER_CELL = 2.6  # one row group: parquet decode buffers plus its int8 copy
FLOAT32_BYTES_PER_CELL = 4.0  # one batch pushed by the stream path
TRAIN_BYTES_PER_CELL = 0.05  # column-wise training on top of the Dataset (histograms, gradients)
RUNTIME_BYTES = 400 * 2**20  # Python, numpy, pyarrow, LightGBM and Prefect loaded
USABLE_FRACTION = 0.85  # leave room for the page cache and whatever else runs
ARROW_FRACTION = 0.5  # the faster Arrow loader only while it leaves half the free memory alone


class MemoryBudgetError(ValueError):
    """The training data will not fit in free memory on any path."""


class DataShape(BaseModel):
    model_config = ConfigDict(frozen=True)

    rows: int
    features: int
    sample_rows: int  # bin_construct_sample_cnt, capped at rows
    group_rows: int  # rows of the largest parquet row group read at once
    batch_rows: int  # rows per float32 batch of the stream path
    # Share of rows in the largest fold's training subset, which is copied out of the loaded
    # Dataset; 0: training uses the whole Dataset, no copy (the final model).
    train_fraction: float = 1.0

    @property
    def cells(self) -> int:
        return self.rows * self.features


class MemoryPlan(BaseModel):
    """The loader chosen and every figure the choice was made from (recorded in the run)."""

    model_config = ConfigDict(frozen=True)

    loader: Literal["arrow", "stream", "cached"]  # cached: bins already built, nothing to bin
    estimates_bytes: dict[str, int]  # peak of each loader and of fold training
    available_bytes: int
    source: str  # where the free-memory figure came from


def estimate_peaks(shape: DataShape) -> dict[str, int]:
    """Peak bytes of building the Dataset by each loader, and of training one fold on it."""
    binned = shape.cells * DATASET_BYTES_PER_CELL
    sample = shape.sample_rows * shape.features * SAMPLE_BYTES_PER_CELL
    group = shape.group_rows * shape.features * DECODE_BYTES_PER_CELL
    batch = shape.batch_rows * shape.features * FLOAT32_BYTES_PER_CELL
    # A fold loads the saved Dataset and copies its training rows into a subset.
    fold = shape.cells * (LOADED_BYTES_PER_CELL * (1 + shape.train_fraction) + TRAIN_BYTES_PER_CELL)
    return {
        "arrow": int(RUNTIME_BYTES + shape.cells * INT8_BYTES_PER_CELL + binned + sample + group),
        "stream": int(RUNTIME_BYTES + binned + sample + group + batch),
        "train_fold": int(RUNTIME_BYTES + fold),
    }


def available_memory() -> tuple[int, str]:
    """Bytes this process can still use: the system's available memory (MemAvailable on Linux,
    the same figure psutil gives on Windows and macOS), capped by a cgroup limit if one is set,
    after handing back what this process has freed (see `release_freed_memory`)."""
    release_freed_memory()
    available, source = psutil.virtual_memory().available, "available memory (psutil)"
    limit = _cgroup_headroom()
    if limit is not None and limit < available:
        available, source = limit, "cgroup memory limit"
    return available, source


def release_freed_memory() -> None:
    """Return memory this process freed but still holds to the system, so that it counts as free.

    glibc keeps freed heap blocks (once large blocks have been freed, LightGBM's per-feature
    bins are allocated below its mmap threshold) and pyarrow keeps its pool: binning 200k x
    2,376 rows left 1.4 GiB resident, 0.25 GiB after this. In a weekly run the final model's
    guard measures after the folds trained in the same process. malloc_trim is glibc's; other
    C libraries and systems skip it.
    """
    gc.collect()
    pa.default_memory_pool().release_unused()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # musl or another libc: no malloc_trim
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def plan_memory(
    shape: DataShape,
    loader: Loader = "auto",
    available: tuple[int, str] | None = None,
    build: bool = True,
) -> MemoryPlan:
    """Pick the loader: Arrow (fastest) when it fits easily, else streaming; fail early when neither fits.

    `auto` takes Arrow only while its peak stays under half the free memory, so a full-size run
    takes the lowest-peak path; an explicit `loader` may use up to 85 % of it. Either way the
    choice is checked, so a run never starts what cannot finish. With `build=False` (bins
    already cached) only fold training has to fit.
    """
    estimates = estimate_peaks(shape)
    free, source = available or available_memory()
    budget = free * USABLE_FRACTION
    budgets = {"arrow": free * ARROW_FRACTION if loader == "auto" else budget, "stream": budget}
    candidates = (["arrow", "stream"] if loader == "auto" else [loader]) if build else []
    fitting = [name for name in candidates if estimates[name] <= budgets[name]]
    if (build and not fitting) or estimates["train_fold"] > budget:
        raise MemoryBudgetError(_advice(shape, estimates, candidates, free, source))
    chosen = fitting[0] if build else "cached"
    return MemoryPlan(loader=chosen, estimates_bytes=estimates, available_bytes=free, source=source)


def _advice(
    shape: DataShape, estimates: dict[str, int], candidates: list[str], free: int, source: str
) -> str:
    needs = "".join(
        f"binning by the {name} loader needs about {estimates[name] / GIB:.1f} GiB; " for name in candidates
    )
    return (
        f"training data of {shape.rows:,} rows x {shape.features:,} features will not fit in memory: "
        f"{needs}training a fold needs about {estimates['train_fold'] / GIB:.1f} GiB; "
        f"{free / GIB:.1f} GiB is free ({source}) and numerflow uses at most {USABLE_FRACTION:.0%} of it. "
        "Shrink the data: a smaller feature set (features.yaml feature_set, or max_features), "
        "era subsampling (training.yaml data.era_stride), or as a last resort data.row_limit"
        + (
            "; or let numerflow pick the leaner loader (training.yaml data.loader: auto)"
            if len(candidates) == 1
            else ""
        )
    )


# Linux containers only: elsewhere these files do not exist and the cgroup cap is skipped.
CGROUPS = (  # (limit, usage, stat, reclaimable page-cache key) for cgroup v2, then v1
    (
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory.current",
        "/sys/fs/cgroup/memory.stat",
        "inactive_file",
    ),
    (
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        "/sys/fs/cgroup/memory/memory.stat",
        "total_inactive_file",
    ),
)


def _cgroup_headroom() -> int | None:
    """Limit minus usage of this process's cgroup; None when unlimited or not readable.

    Usage counts the page cache, so the inactive part (which the kernel drops under pressure)
    is taken off it.
    """
    for limit_path, usage_path, stat_path, cache_key in CGROUPS:
        try:
            limit_text = Path(limit_path).read_text().strip()
            usage = int(Path(usage_path).read_text().strip())
            stat = dict(line.split() for line in Path(stat_path).read_text().splitlines())
        except (OSError, ValueError):
            continue
        if limit_text == "max" or int(limit_text) >= 2**60:
            return None
        return max(0, int(limit_text) - usage + int(stat.get(cache_key, 0)))
    return None
