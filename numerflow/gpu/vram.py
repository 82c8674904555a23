"""VRAM model: the expected peak GPU memory of training one fold, from the data's shape.

Like the memory guard for RAM (`numerflow.data.memory`), it is checked before any feature is
read. Every constant comes from a measurement or, where none exists yet, from LightGBM's source
(and says so). `benchmarks/gpu.py` measures them on the user's own card and writes them to a
calibration file that `vram_model` reads in preference to the built-in ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

GIB = 2**30
MIB = 2**20
Learner = Literal["gpu", "cuda"]  # LightGBM's OpenCL learner (the PyPI wheel) or its CUDA build

# OpenCL learner, measured on an NVIDIA H100 with `benchmarks/gpu.py`: peak VRAM above idle was
# 653 / 911 / 1,745 / 3,817 MiB at 100k / 300k / 1M / 2.7M rows x 2,376 features. The
# least-squares line through the four is 537 MiB + 0.536 byte a cell (each point within 1.1 %):
# features of <= 16 bins are packed 4 bits a cell, plus the OpenCL context and the kernels.
OPENCL_BASE_BYTES = 537 * MIB
OPENCL_BYTES_PER_CELL = 0.536
# CUDA learner: not measured yet, an estimate from LightGBM 4.7's source (src/treelearner/cuda):
# CUDARowData uploads the row-wise bins at 1 byte a cell (<= 256 bins), and every row carries
# gradients and hessians (float), a double score and partition indices, about 24 bytes. Its
# base is taken to be the OpenCL one's until a benchmark on a CUDA build replaces it.
CUDA_BASE_BYTES = OPENCL_BASE_BYTES
CUDA_BYTES_PER_CELL = 1.0
CUDA_BYTES_PER_ROW = 24.0
# On the same H100 the OpenCL learner cost about 3.1 ms + 1.18e-11 s a cell for a tree and the
# 16-thread CPU 6.46e-11 s a cell (lines through the 100k and 300k x 2,376 rows of that table), so the
# GPU wins above about 6.3e7 cells; the notes bound it between 1.5e6 (the demo, where the GPU
# lost, 133 s to 76 s) and 2.4e8 (100k x 2,376, where it won 2.6x). A CPU with fewer cores
# breaks even lower; `benchmarks/gpu.py --write` measures it for the user's own box.
MEASURED_MIN_GPU_CELLS = 6.3e7
USABLE_VRAM_FRACTION = 0.9  # leave room for the driver, fragmentation and the desktop's growth
# Numerai's features take 5 values: every max_bin >= 5 gives them 5 bins.
NUMERAI_BINS = 5


class TrainingShape(BaseModel):
    """The data a run would train on, known before any feature is read."""

    model_config = ConfigDict(frozen=True)

    rows: int = Field(ge=1, description="training rows after era_stride and row_limit")
    features: int = Field(ge=1)
    era_stride: int = Field(1, ge=1, description="the stride that gave `rows`")
    train_fraction: float = Field(1.0, gt=0, le=1, description="share of rows in a fold's training subset")
    bins_per_feature: int = Field(NUMERAI_BINS, ge=2)

    @property
    def fold_rows(self) -> int:
        return max(1, int(self.rows * self.train_fraction))

    @property
    def fold_cells(self) -> int:
        """Cells the learner trains on in one fold: what sizes both its VRAM and its speed."""
        return self.fold_rows * self.features

    def with_stride(self, era_stride: int) -> TrainingShape:
        """About the rows every `era_stride`-th era leaves (eras hold similar numbers of rows)."""
        rows = max(1, self.rows * self.era_stride // era_stride)
        return self.model_copy(update={"rows": rows, "era_stride": era_stride})

    def describe(self) -> str:
        return f"{self.fold_rows:,} fold rows x {self.features:,} features ({self.fold_cells:.2e} cells)"


class VramModel(BaseModel):
    """Constants of one learner: VRAM = base + cells x per cell + rows x per row; and where the
    GPU starts paying off."""

    model_config = ConfigDict(frozen=True)

    learner: Learner
    base_bytes: int = Field(ge=0)
    bytes_per_cell: float = Field(gt=0, description="at Numerai's 5 bins a feature")
    bytes_per_row: float = Field(0.0, ge=0)
    min_gpu_cells: float = Field(ge=0, description="fold cells above which the GPU is faster than the CPU")
    source: str

    def estimate(self, shape: TrainingShape) -> int:
        """Peak VRAM of training one fold of `shape`."""
        per_cell = self.bytes_per_cell * _packing_factor(self.learner, shape.bins_per_feature)
        return int(self.base_bytes + shape.fold_cells * per_cell + shape.fold_rows * self.bytes_per_row)


BUILT_IN = {
    "gpu": VramModel(
        learner="gpu",
        base_bytes=OPENCL_BASE_BYTES,
        bytes_per_cell=OPENCL_BYTES_PER_CELL,
        min_gpu_cells=MEASURED_MIN_GPU_CELLS,
        source="measured on an NVIDIA H100 with benchmarks/gpu.py",
    ),
    "cuda": VramModel(
        learner="cuda",
        base_bytes=CUDA_BASE_BYTES,
        bytes_per_cell=CUDA_BYTES_PER_CELL,
        bytes_per_row=CUDA_BYTES_PER_ROW,
        min_gpu_cells=MEASURED_MIN_GPU_CELLS,
        source="estimated from LightGBM 4.7's CUDA source, not measured",
    ),
}


def _packing_factor(learner: Learner, bins: int) -> float:
    """How much more a cell costs than at 5 bins: the OpenCL learner packs <= 16 bins into 4
    bits and <= 256 into 8; the CUDA learner stores 8 bits up to 256 bins, else 16."""
    if learner == "gpu":
        return 1.0 if bins <= 16 else 2.0
    return 1.0 if bins <= 256 else 2.0


def calibration_path(cache_dir: Path) -> Path:
    return cache_dir / "gpu-calibration.json"


def vram_model(learner: Learner, cache_dir: Path | None) -> VramModel:
    """This machine's calibration (written by `benchmarks/gpu.py --write`), else the built-in."""
    if cache_dir is not None:
        try:
            saved = json.loads(calibration_path(cache_dir).read_text(encoding="utf-8"))
            return VramModel.model_validate(saved[learner])
        except (OSError, ValueError, KeyError):
            pass  # no calibration (or a damaged one): the measured built-in constants
    return BUILT_IN[learner]


def save_calibration(models: list[VramModel], cache_dir: Path) -> Path:
    """Store measured constants where `vram_model` reads them; other learners' entries stay."""
    from numerflow.io import write_json_atomic

    path = calibration_path(cache_dir)
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    known.update({m.learner: m.model_dump(mode="json") for m in models})
    write_json_atomic(path, known)
    return path


class VramFit(BaseModel):
    """Whether one fold fits the card, and the leanest smaller shape that does."""

    model_config = ConfigDict(frozen=True)

    needed_bytes: int  # the run's own shape
    fitted_bytes: int  # the shape chosen
    budget_bytes: int
    shape: TrainingShape  # the shape that fits: the original, a reduced one, or the original when none fits
    era_stride: int | None = None  # a larger stride than the run's, when rows had to go
    max_features: int | None = None  # a feature cap, when features had to go too
    fits: bool

    @property
    def reduced(self) -> bool:
        return self.era_stride is not None or self.max_features is not None


def fit_to_vram(shape: TrainingShape, model: VramModel, free_bytes: int, can_reduce: bool = True) -> VramFit:
    """Does a fold of `shape` fit `free_bytes`? If not, the leanest change that fits: a larger
    era stride first (up to twice the run's: neighbouring eras overlap, since 20-day targets
    span weekly eras, so the rows dropped are the most redundant ones), then fewer features (down
    to half). Deeper cuts cost the model more than the GPU saves in time: then nothing fits."""
    budget = int(free_bytes * USABLE_VRAM_FRACTION)
    needed = model.estimate(shape)

    def fit(chosen: TrainingShape, **limits: int) -> VramFit:
        fitted = model.estimate(chosen)
        fits = fitted <= budget
        return VramFit(
            needed_bytes=needed, fitted_bytes=fitted, budget_bytes=budget, shape=chosen, fits=fits, **limits
        )

    if needed <= budget or not can_reduce:
        return fit(shape)
    widest = 2 * shape.era_stride
    for stride in range(shape.era_stride + 1, widest + 1):
        if model.estimate(shape.with_stride(stride)) <= budget:
            return fit(shape.with_stride(stride), era_stride=stride)
    features = _features_within(shape.with_stride(widest), model, budget)
    if features >= (shape.features + 1) // 2:
        reduced = shape.with_stride(widest).model_copy(update={"features": features})
        return fit(reduced, era_stride=widest, max_features=features)
    return fit(shape)


def _features_within(shape: TrainingShape, model: VramModel, budget: int) -> int:
    """The most features a fold of `shape`'s rows can have within `budget` (the estimate is
    linear in features)."""
    one, two = (model.estimate(shape.model_copy(update={"features": n})) for n in (1, 2))
    per_feature = two - one
    return max(0, int((budget - (one - per_feature)) // per_feature))


def describe_fit(fit: VramFit, free_bytes: int, original: TrainingShape) -> str:
    """The figures behind a VRAM decision, for the log, the run summary and errors."""
    figures = (
        f"{original.describe()} needs about {fit.needed_bytes / GIB:.1f} GiB of VRAM; "
        f"{free_bytes / GIB:.1f} GiB free, {fit.budget_bytes / GIB:.1f} GiB usable"
    )
    if not fit.reduced:
        return figures
    changes = [f"era_stride {original.era_stride} -> {fit.era_stride}"]
    if fit.max_features is not None:
        changes.append(f"max_features {original.features} -> {fit.max_features}")
    return (
        f"{figures}; reduced to {fit.shape.describe()}, about {fit.fitted_bytes / GIB:.1f} GiB "
        f"({', '.join(changes)})"
    )
