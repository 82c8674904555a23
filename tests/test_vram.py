"""The VRAM model: the measured constants reproduce the measurements, reductions fit, and a
calibration replaces the built-in figures."""

from pathlib import Path

import pytest

from numerflow.gpu.calibration import Measurement, break_even_cells, calibrate
from numerflow.gpu.shape import parse_shape
from numerflow.gpu.vram import (
    BUILT_IN,
    GIB,
    MIB,
    TrainingShape,
    VramModel,
    fit_to_vram,
    save_calibration,
    vram_model,
)

# Peak VRAM of the OpenCL learner on an H100 (benchmarks/gpu.py), whole sets (no fold).
MEASURED_MIB = {100_000: 653, 300_000: 911, 1_000_000: 1_745, 2_700_000: 3_817}


@pytest.mark.parametrize(("rows", "mib"), MEASURED_MIB.items())
def test_the_opencl_constants_reproduce_the_h100_measurements(rows: int, mib: int) -> None:
    estimate = BUILT_IN["gpu"].estimate(TrainingShape(rows=rows, features=2_376))
    assert estimate / MIB == pytest.approx(mib, rel=0.02)


def test_more_than_16_bins_doubles_the_opencl_cell_cost() -> None:
    five = TrainingShape(rows=1_000_000, features=1_000)
    wide = five.model_copy(update={"bins_per_feature": 64})
    model = BUILT_IN["gpu"]
    assert model.estimate(wide) - model.base_bytes == pytest.approx(
        2 * (model.estimate(five) - model.base_bytes)
    )


def test_a_fold_uses_its_share_of_the_rows() -> None:
    shape = TrainingShape(rows=1_000_000, features=100, train_fraction=0.75)
    assert shape.fold_rows == 750_000 and shape.fold_cells == 75_000_000
    assert shape.with_stride(2).rows == 500_000 and shape.with_stride(2).era_stride == 2


def test_reductions_fit_and_stop_at_half() -> None:
    shape = TrainingShape(rows=2_700_000, features=2_376, era_stride=4)
    model = BUILT_IN["gpu"]
    fits = fit_to_vram(shape, model, 8 * GIB)
    assert fits.fits and not fits.reduced
    fewer_rows = fit_to_vram(shape, model, int(3.6 * GIB))
    assert fewer_rows.era_stride == 5 and fewer_rows.max_features is None and fewer_rows.fits
    fewer_features = fit_to_vram(shape, model, int(2.0 * GIB))
    assert fewer_features.era_stride == 8 and fewer_features.max_features is not None
    assert model.estimate(fewer_features.shape) <= fewer_features.budget_bytes
    more_features = fewer_features.shape.model_copy(update={"features": fewer_features.max_features + 1})
    assert model.estimate(more_features) > fewer_features.budget_bytes  # the most that fit
    assert not fit_to_vram(shape, model, int(0.7 * GIB)).fits
    assert not fit_to_vram(shape, model, int(3.6 * GIB), can_reduce=False).fits


def test_a_calibration_replaces_the_built_in_constants(tmp_path: Path) -> None:
    assert vram_model("gpu", tmp_path) == BUILT_IN["gpu"]
    mine = VramModel(
        learner="gpu", base_bytes=300 * MIB, bytes_per_cell=0.6, min_gpu_cells=2e7, source="my box"
    )
    save_calibration([mine], tmp_path)
    assert vram_model("gpu", tmp_path) == mine
    assert vram_model("cuda", tmp_path) == BUILT_IN["cuda"]  # only what was measured is replaced
    (tmp_path / "gpu-calibration.json").write_text("{not json")
    assert vram_model("gpu", tmp_path) == BUILT_IN["gpu"]


def test_shape_parsing() -> None:
    assert parse_shape("2700000x2376") == (2_700_000, 2_376)
    assert parse_shape("2.7e6 x 2,376") == (2_700_000, 2_376)
    for wrong in ("lots", "0x10", "10x"):
        with pytest.raises(ValueError, match="not a shape like"):
            parse_shape(wrong)


# Measured on an H100 with benchmarks/gpu.py: rows x 2,376, CPU (16 threads) and OpenCL s/tree, peak VRAM MiB.
H100 = [
    (100_000, 0.0151, 0.0059, 653),
    (300_000, 0.0458, 0.0115, 911),
    (1_000_000, 0.2058, 0.0660, 1_745),
    (2_700_000, 0.3885, 0.0838, 3_817),
]


def _measured(rows: int, cpu: float, gpu: float, mib: int | None = None) -> Measurement:
    peak = None if mib is None else mib * MIB
    return Measurement(
        rows=rows, features=2_376, cpu_s_per_tree=cpu, gpu_s_per_tree=gpu, peak_vram_bytes=peak
    )


def test_calibrating_on_the_h100_table_gives_the_built_in_constants() -> None:
    model = calibrate("gpu", [_measured(*row) for row in H100], source="H100")
    built_in = BUILT_IN["gpu"]
    assert model.base_bytes == pytest.approx(built_in.base_bytes, rel=0.01)
    assert model.bytes_per_cell == pytest.approx(built_in.bytes_per_cell, rel=0.01)
    assert model.min_gpu_cells == pytest.approx(built_in.min_gpu_cells, rel=0.01)


def test_break_even_between_a_loss_and_a_win() -> None:
    # The GPU loses by 2 ms a tree at 1e6 cells and wins by 2 ms at 3e6: even at 2e6.
    lose, win = _measured(1_000_000 // 2_376, 0.001, 0.003), _measured(3_000_000 // 2_376, 0.006, 0.004)
    assert break_even_cells([win, lose]) == pytest.approx(2e6, rel=0.01)
    never = [_measured(1_000, 0.001, 0.003), _measured(2_000, 0.002, 0.005)]
    assert break_even_cells(never) == float("inf")
    assert break_even_cells(never[:1]) is None
    assert calibrate("gpu", never[:1], source="one size") is None
