"""Fit a learner's VRAM constants and its break-even size from measurements (`benchmarks/gpu.py`).

Fed the H100 table measured with `benchmarks/gpu.py` it gives back the built-in constants of
`numerflow.gpu.vram` (tests/test_vram.py holds the table and checks that), so a user's
calibration and the shipped figures come from one method."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
from pydantic import BaseModel, ConfigDict

from numerflow.gpu.vram import Learner, VramModel


class Measurement(BaseModel):
    """One size trained on the CPU and on a GPU learner, whole set (no fold)."""

    model_config = ConfigDict(frozen=True)

    rows: int
    features: int
    cpu_s_per_tree: float
    gpu_s_per_tree: float
    peak_vram_bytes: int | None = None

    @property
    def cells(self) -> int:
        return self.rows * self.features

    @property
    def gpu_lead_s(self) -> float:
        """Seconds a tree the GPU is slower than the CPU (negative: faster)."""
        return self.gpu_s_per_tree - self.cpu_s_per_tree


def break_even_cells(measurements: list[Measurement]) -> float | None:
    """Cells where the GPU starts to be faster: the zero of the GPU's lead, interpolated between
    the two sizes around the crossing, or extrapolated from the two nearest sizes when it wins
    (or loses) everywhere. `inf` when it never wins; None with fewer than two sizes."""
    points = sorted(measurements, key=lambda m: m.cells)
    if len(points) < 2:
        return None
    pairs = list(pairwise(points))
    crossing = next((p for p in pairs if p[0].gpu_lead_s > 0 >= p[1].gpu_lead_s), None)
    if crossing is None:
        crossing = pairs[0] if points[0].gpu_lead_s <= 0 else pairs[-1]
    near, far = crossing
    slope = (far.gpu_lead_s - near.gpu_lead_s) / (far.cells - near.cells)
    if slope >= 0:  # the GPU's lead does not grow with size
        return 0.0 if near.gpu_lead_s <= 0 else math.inf
    return max(0.0, near.cells - near.gpu_lead_s / slope)


def fit_vram(measurements: list[Measurement]) -> tuple[int, float] | None:
    """Least-squares base bytes and bytes a cell of the peak VRAM; None with fewer than two sizes."""
    points = [(m.cells, m.peak_vram_bytes) for m in measurements if m.peak_vram_bytes is not None]
    if len({cells for cells, _ in points}) < 2:
        return None
    cells, peaks = np.array(points, dtype=float).T
    (base, per_cell), *_ = np.linalg.lstsq(np.c_[np.ones(len(cells)), cells], peaks, rcond=None)
    return max(0, int(base)), float(per_cell)


def calibrate(learner: Learner, measurements: list[Measurement], source: str) -> VramModel | None:
    """The constants the decision reads, or None when the measurements cannot give them."""
    vram, break_even = fit_vram(measurements), break_even_cells(measurements)
    if vram is None or break_even is None or vram[1] <= 0:
        return None
    return VramModel(
        learner=learner,
        base_bytes=vram[0],
        bytes_per_cell=vram[1],
        min_gpu_cells=min(break_even, 1e15),  # "never" as a size no run reaches
        source=source,
    )
