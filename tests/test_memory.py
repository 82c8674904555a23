"""The memory guard picks a loader that fits, or stops before loading with the options."""

from pathlib import Path

import pytest

from numerflow.config.models import LightGBMParams
from numerflow.data.memory import (
    GIB,
    DataShape,
    MemoryBudgetError,
    available_memory,
    estimate_peaks,
    plan_memory,
)
from tests.conftest import prepare

FULL_NUMERAI = DataShape(
    rows=2_700_000, features=2376, sample_rows=20_000, group_rows=50_000, batch_rows=7000, train_fraction=0.75
)


def test_estimates_match_the_measured_costs_at_numerai_scale() -> None:
    peaks = estimate_peaks(FULL_NUMERAI)
    raw = FULL_NUMERAI.cells  # int8 bytes
    assert peaks["stream"] < peaks["arrow"]
    assert 1.0 * raw < peaks["stream"] < 1.5 * raw  # streaming: the bins plus small buffers
    assert 2.0 * raw < peaks["arrow"] < 3.0 * raw  # plus the int8 table itself
    assert peaks["train_fold"] < 24 * GIB


def test_the_fastest_loader_that_fits_is_chosen() -> None:
    peaks = estimate_peaks(FULL_NUMERAI)
    roomy = plan_memory(FULL_NUMERAI, available=(64 * GIB, "test"))
    assert roomy.loader == "arrow" and roomy.estimates_bytes == peaks
    # Arrow fits in 85 % of this but would take more than half of it: auto streams.
    between = int(peaks["arrow"] / 0.7)
    assert peaks["stream"] < between * 0.85 and peaks["train_fold"] < between * 0.85
    assert plan_memory(FULL_NUMERAI, available=(between, "test")).loader == "stream"
    assert plan_memory(FULL_NUMERAI, "arrow", available=(between, "test")).loader == "arrow"
    assert plan_memory(FULL_NUMERAI, "stream", available=(64 * GIB, "test")).loader == "stream"


def test_data_that_fits_no_loader_fails_with_the_figures_and_the_options() -> None:
    with pytest.raises(MemoryBudgetError) as failure:
        plan_memory(FULL_NUMERAI, available=(4 * GIB, "test"))
    message = str(failure.value)
    for expected in ("2,700,000 rows x 2,376 features", "arrow loader", "stream loader", "4.0 GiB is free"):
        assert expected in message
    for option in ("feature_set", "era_stride", "row_limit"):
        assert option in message

    peaks = estimate_peaks(FULL_NUMERAI)
    tight = int((peaks["arrow"] + max(peaks["stream"], peaks["train_fold"])) / 2 / 0.85)
    with pytest.raises(MemoryBudgetError, match=r"data\.loader: auto"):  # an explicit loader is checked too
        plan_memory(FULL_NUMERAI, "arrow", available=(tight, "test"))


def test_cached_bins_only_need_training_to_fit() -> None:
    peaks = estimate_peaks(FULL_NUMERAI)
    just_training = int(peaks["train_fold"] / 0.85) + 1
    plan = plan_memory(FULL_NUMERAI, available=(just_training, "test"), build=False)
    assert plan.loader == "cached"
    with pytest.raises(MemoryBudgetError, match="training a fold needs"):
        plan_memory(FULL_NUMERAI, available=(just_training // 2, "test"), build=False)


def test_a_run_that_cannot_fit_stops_before_binning_anything(version_dir: Path, tmp_path: Path) -> None:
    params = LightGBMParams(n_estimators=5)
    with pytest.raises(MemoryBudgetError, match="13,500 rows x 10 features"):
        prepare(
            version_dir,
            [f"feature_{i:04d}" for i in range(10)],
            ["target"],
            params,
            tmp_path,
            available=(1000, "test"),
        )
    bins = tmp_path / "bins"
    assert not [p for p in bins.iterdir() if p.is_dir()]  # no entry, complete or partial


def test_free_memory_is_read_from_the_system() -> None:
    free, source = available_memory()
    assert 0 < free < 2**50 and source
