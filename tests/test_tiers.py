"""Tier decisions from simulated NVML answers, the capability check, and GPU-error fallback."""

from pathlib import Path

import lightgbm
import numpy as np
import pytest

from numerflow.config.models import LightGBMParams, ProgramInputParams
from numerflow.gpu.capability import Capability, check_capability
from numerflow.gpu.errors import is_gpu_error
from numerflow.gpu.probe import probe_gpus
from numerflow.gpu.report import parse_size
from numerflow.gpu.tiers import GpuRequiredError, TierStep, decide, gpu_required
from numerflow.train.fit import fit_fold_on_ladder
from numerflow.train.folds import make_folds
from tests.conftest import prepare
from tests.fake_nvml import FakeNvml

OK = Capability(ok=True, reason="test training succeeded")
PROGRAM = ProgramInputParams()


def _tier(
    nvml: FakeNvml, visible: str | None = None, capability: Capability | None = OK, required: bool = False
):
    return decide(PROGRAM, probe_gpus(nvml, visible=visible), capability, required)


def test_no_library_or_no_device_trains_on_cpu() -> None:
    missing = _tier(FakeNvml([], init_error=OSError("NVML Shared Library Not Found")), capability=None)
    assert missing.tier == "cpu" and "Shared Library Not Found" in missing.reason
    assert missing.params.device_type == "cpu" and [s.tier for s in missing.ladder] == ["cpu"]
    assert _tier(FakeNvml([]), capability=None).tier == "cpu"


@pytest.mark.parametrize(("free", "tier"), [(2, "safe"), (6, "medium"), (7.5, "full"), (1, "cpu")])
def test_8gib_card_by_free_memory(free: float, tier: str) -> None:
    decision = _tier(FakeNvml([("RTX 4060", 8, free)]))
    assert decision.tier == tier
    if tier != "cpu":
        assert decision.params.device_type == "gpu" and decision.params.gpu_device_id == 0
        assert f"{free:.1f} GiB free" in decision.reason


def test_ladder_steps_down_to_cpu_keeping_dataset_params() -> None:
    decision = _tier(FakeNvml([("RTX 4060", 8, 7.5)]))
    assert [s.tier for s in decision.ladder] == ["full", "medium", "safe", "cpu"]
    assert {s.params.max_bin for s in decision.ladder} == {255}  # data is binned once
    assert decision.ladder[-1].params.device_type == "cpu"
    assert decision.ladder[-1].params.gpu_device_id is None


def test_two_gpus_one_hidden() -> None:
    nvml = FakeNvml([("RTX 3090", 24, 20), ("RTX 4060", 8, 2)])
    assert _tier(nvml).tier == "full"  # the card with most free memory
    hidden = _tier(nvml, visible="1")
    assert hidden.tier == "safe" and hidden.device.name == "RTX 4060" and hidden.params.gpu_device_id == 1
    chosen = decide(
        PROGRAM.model_copy(update={"gpu": PROGRAM.gpu.model_copy(update={"device_index": 1})}),
        probe_gpus(nvml, visible=None),
        OK,
        False,
    )
    assert chosen.device.index == 1


def test_mig_slices_are_devices_with_their_own_memory() -> None:
    nvml = FakeNvml([("A100", 80, 70)], mig={0: [(10, 9.5), (20, 3)]})
    probe = probe_gpus(nvml, visible=None)
    assert [(d.uuid, d.mig) for d in probe.devices] == [("MIG-0-0", True), ("MIG-0-1", True)]
    assert decide(PROGRAM, probe, OK, False).tier == "full"
    only_small = probe_gpus(nvml, visible="MIG-0-1")
    assert [d.uuid for d in only_small.devices] == ["MIG-0-1"]
    assert decide(PROGRAM, only_small, OK, False).tier == "safe"


def test_lightgbm_without_gpu_support_falls_back_or_fails_when_required() -> None:
    broken = Capability(ok=False, reason="No OpenCL device found")
    decision = _tier(FakeNvml([("RTX 4060", 8, 7.5)]), capability=broken)
    assert decision.tier == "cpu" and "No OpenCL device found" in decision.reason
    with pytest.raises(GpuRequiredError, match=r"a GPU is required .* No OpenCL device found"):
        _tier(FakeNvml([("RTX 4060", 8, 7.5)]), capability=broken, required=True)
    with pytest.raises(GpuRequiredError, match="NVML Shared Library Not Found"):
        _tier(
            FakeNvml([], init_error=OSError("NVML Shared Library Not Found")), capability=None, required=True
        )


def test_gpu_required_from_config_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPU_REQUIRED", raising=False)
    assert not gpu_required(PROGRAM)
    assert gpu_required(PROGRAM.model_copy(update={"gpu": PROGRAM.gpu.model_copy(update={"required": True})}))
    monkeypatch.setenv("GPU_REQUIRED", "1")
    assert gpu_required(PROGRAM)


def test_gpu_errors_are_recognised() -> None:
    assert is_gpu_error(lightgbm.basic.LightGBMError("No OpenCL device found"))
    assert is_gpu_error(lightgbm.basic.LightGBMError("CUDA Tree Learner was not enabled in this build."))
    assert is_gpu_error(lightgbm.basic.LightGBMError("Check failed: out of memory"))
    assert not is_gpu_error(lightgbm.basic.LightGBMError("Check failed: num_leaves > 1"))
    assert not is_gpu_error(ValueError("gpu"))


def test_capability_check_runs_once_per_environment(tmp_path: Path) -> None:
    probe = probe_gpus(FakeNvml([("RTX 4060", 8, 7.5)]), visible=None)
    first = check_capability("cuda", probe.devices[0], probe, tmp_path)
    assert not first.ok and not first.cached and "CUDA" in first.reason  # the PyPI wheel has no CUDA
    second = check_capability("cuda", probe.devices[0], probe, tmp_path)
    assert second.cached and second.reason == first.reason


def test_size_parsing() -> None:
    assert parse_size("6GiB") == 6 * 2**30 and parse_size("7.5 GB") == int(7.5 * 2**30)
    assert parse_size("512MiB") == 512 * 2**20
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")


def test_a_gpu_error_in_one_fold_steps_down_and_is_recorded(version_dir: Path, tmp_path: Path) -> None:
    """The real GPU learner fails here (no OpenCL device): the fold ends up on the CPU."""
    from numerflow.data.files import read_training

    frame = read_training(version_dir / "train.parquet", [f"feature_{i:04d}" for i in range(10)], ["target"])
    base = LightGBMParams(n_estimators=10, learning_rate=0.1)
    prepared = prepare(version_dir, frame.feature_names, ["target"], base, tmp_path)
    fold = make_folds(prepared.eras, 3, 4)[1]
    ladder = [
        TierStep(tier="full", params=base.model_copy(update={"device_type": "cuda"})),
        # A lower tier with other dataset parameters trains on the bins as built.
        TierStep(tier="cpu", params=base.model_copy(update={"max_bin": 15})),
    ]
    result = fit_fold_on_ladder(prepared, fold, "target", ladder, seed=1, models_dir=tmp_path / "models")
    assert result.tier == "cpu" and result.device_type == "cpu"
    [step] = result.downgrades
    assert (step["from"], step["to"]) == ("full", "cpu") and "CUDA" in step["error"]
    assert np.isfinite(lightgbm.Booster(model_file=str(result.model_path)).predict(frame.features[:5])).all()

    with pytest.raises(lightgbm.basic.LightGBMError):  # the last rung's error is not swallowed
        fit_fold_on_ladder(prepared, fold, "target", ladder[:1], seed=1, models_dir=tmp_path / "m2")
