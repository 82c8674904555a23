"""The device decision from simulated NVML answers and data shapes, the capability check, and the
GPU-error fallback ladder."""

import signal
import sys
from pathlib import Path

import lightgbm
import numpy as np
import pytest

from numerflow.config.models import LightGBMParams, ProgramInputParams
from numerflow.gpu import capability as capability_module
from numerflow.gpu.capability import Capability, check_capability, run_child
from numerflow.gpu.decision import GpuRequiredError, decide, gpu_required
from numerflow.gpu.probe import GIB, probe_gpus
from numerflow.gpu.report import parse_size
from numerflow.gpu.vram import BUILT_IN, TrainingShape
from numerflow.train.device import FallbackStep, is_gpu_error
from numerflow.train.fit import fit_fold_on_ladder
from numerflow.train.folds import make_folds
from tests.conftest import opencl_driver_registered, prepare
from tests.fake_nvml import FakeNvml

OK = Capability(ok=True, reason="test training succeeded")
POSIX_SIGNALS = "a child killed by a signal: Windows children end with an exit code instead"
PROGRAM = ProgramInputParams()
# Numerai v5's whole training set (era_stride 1), trained in 4 folds.
FULL_V5 = TrainingShape(rows=2_700_000, features=2_376, era_stride=1, train_fraction=3 / 4)
# What `numerflow demo` trains: about 25k rows x 60 features, 4 folds.
DEMO = TrainingShape(rows=25_000, features=60, era_stride=1, train_fraction=3 / 4)


def _program(**gpu: object) -> ProgramInputParams:
    return PROGRAM.model_copy(update={"gpu": PROGRAM.gpu.model_copy(update=gpu)})


def _decide(
    nvml: FakeNvml,
    shape: TrainingShape | None = FULL_V5,
    visible: str | None = None,
    capability: Capability | None = OK,
    required: bool = False,
    program: ProgramInputParams = PROGRAM,
):
    return decide(program, probe_gpus(nvml, visible=visible), capability, required, shape)


def test_no_library_or_no_device_trains_on_cpu() -> None:
    missing = _decide(FakeNvml([], init_error=OSError("NVML Shared Library Not Found")), capability=None)
    assert missing.choice == "cpu" and "Shared Library Not Found" in missing.reason
    assert missing.params.device_type == "cpu" and [s.name for s in missing.ladder] == ["cpu"]
    assert _decide(FakeNvml([]), capability=None).choice == "cpu"


def test_8gib_card_with_7_5_free_trains_the_full_v5_set_on_the_gpu() -> None:
    decision = _decide(FakeNvml([("RTX 4060", 8, 7.5)]))
    assert decision.choice == "gpu" and decision.params.device_type == "gpu"
    assert decision.era_stride is None and decision.max_features is None  # all rows, all features
    assert decision.shape == FULL_V5
    assert decision.vram.fitted_bytes <= 7.5 * GIB * 0.9
    assert decision.params.learning_rate == PROGRAM.params.learning_rate  # the user's own parameters
    assert "7.5 GiB free" in decision.reason and "2,025,000 fold rows x 2,376 features" in decision.reason


def test_3gib_free_gets_a_reduced_shape_that_the_estimate_says_fits() -> None:
    decision = _decide(FakeNvml([("RTX 4060", 8, 3)]))
    assert decision.choice == "gpu" and decision.era_stride == 2 and decision.max_features is None
    fit = decision.vram
    assert fit.needed_bytes > fit.budget_bytes >= fit.fitted_bytes
    assert BUILT_IN["gpu"].estimate(decision.shape) == fit.fitted_bytes
    assert decision.shape.rows == FULL_V5.rows // 2 and decision.shape.features == FULL_V5.features
    figures = (
        "3.0 GiB free",
        f"needs about {fit.needed_bytes / GIB:.1f} GiB",
        f"about {fit.fitted_bytes / GIB:.1f} GiB",
        "era_stride 1 -> 2",
    )
    for figure in figures:
        assert figure in decision.reason, figure


def test_too_little_vram_cuts_features_after_rows_then_gives_up() -> None:
    cut = _decide(FakeNvml([("RTX 4060", 8, 1.9)]))
    assert cut.era_stride == 2 and FULL_V5.features // 2 <= cut.max_features < FULL_V5.features
    assert cut.vram.fitted_bytes <= cut.vram.budget_bytes
    hopeless = _decide(FakeNvml([("RTX 4060", 8, 1.0)]))
    assert (
        hopeless.choice == "cpu" and "does not fit" in hopeless.reason and "1.0 GiB free" in hopeless.reason
    )
    with pytest.raises(GpuRequiredError, match=r"1\.0 GiB free"):
        _decide(FakeNvml([("RTX 4060", 8, 1.0)]), required=True)


def test_when_too_big_cpu_trains_on_the_cpu_instead_of_reducing() -> None:
    decision = _decide(FakeNvml([("RTX 4060", 8, 3)]), program=_program(when_too_big="cpu"))
    assert decision.choice == "cpu" and decision.era_stride is None
    assert "gpu.when_too_big is cpu" in decision.reason and "3.0 GiB free" in decision.reason


def test_the_demo_shape_trains_on_the_cpu_under_auto() -> None:
    nvml = FakeNvml([("H100", 80, 79)])
    auto = _decide(nvml, shape=DEMO)
    assert auto.choice == "cpu" and "break-even" in auto.reason and "1.12e+06 cells" in auto.reason
    assert _decide(nvml, shape=DEMO, program=_program(device="gpu")).choice == "gpu"  # asked for: granted
    assert _decide(nvml, shape=DEMO, required=True).choice == "gpu"  # a required GPU is used
    lowered = _decide(nvml, shape=DEMO, program=_program(min_gpu_cells=1e6))
    assert lowered.choice == "gpu"  # a calibrated break-even from the config


def test_device_cpu_and_cuda() -> None:
    nvml = FakeNvml([("RTX 4060", 8, 7.5)])
    assert _decide(nvml, program=_program(device="cpu")).choice == "cpu"
    cuda = _decide(nvml, program=_program(device="cuda"))
    assert cuda.choice == "cuda" and cuda.params.device_type == "cuda" and cuda.params.gpu_device_id == 0
    assert BUILT_IN["cuda"].estimate(FULL_V5) > BUILT_IN["gpu"].estimate(FULL_V5)  # 1 byte a cell, not 4 bits


def test_ladder_steps_down_to_cpu_keeping_dataset_params() -> None:
    program = _program(params={"max_bin": 63, "gpu_use_dp": True})
    decision = _decide(FakeNvml([("RTX 4060", 8, 7.5)]), program=program)
    assert [s.name for s in decision.ladder] == ["gpu", "cpu"]
    assert decision.params.gpu_use_dp and decision.params.max_bin == 63  # pinned for the GPU
    assert {s.params.max_bin for s in decision.ladder} == {63}  # data is binned once
    cpu = decision.ladder[-1].params
    assert cpu.device_type == "cpu" and cpu.gpu_device_id is None and cpu.gpu_platform_id is None


def test_cuda_visible_devices_1_on_a_two_card_box_is_cuda_device_0() -> None:
    nvml = FakeNvml([("RTX 3090", 24, 20), ("RTX 4060", 8, 7.5)])
    decision = _decide(nvml, visible="1", program=_program(device="cuda"))
    assert decision.device.index == 1 and decision.device.name == "RTX 4060"
    assert decision.params.gpu_device_id == 0  # CUDA renumbers the visible cards from 0
    both = _decide(nvml, visible="1,0", program=_program(device="cuda", device_index=0))
    assert both.params.gpu_device_id == 1


def test_opencl_device_comes_from_the_capability_check() -> None:
    checked = Capability(ok=True, reason="trained", learner="gpu", platform_id=1, device_id=0)
    decision = _decide(FakeNvml([("RTX 4060", 8, 7.5)]), capability=checked)
    assert (decision.params.gpu_platform_id, decision.params.gpu_device_id) == (1, 0)


def test_mig_slices_are_devices_with_their_own_memory() -> None:
    nvml = FakeNvml([("A100", 80, 70)], mig={0: [(10, 9.5), (20, 1.0)]})
    probe = probe_gpus(nvml, visible=None)
    assert [(d.uuid, d.mig) for d in probe.devices] == [("MIG-0-0", True), ("MIG-0-1", True)]
    assert decide(PROGRAM, probe, OK, False, FULL_V5).choice == "gpu"
    only_small = probe_gpus(nvml, visible="MIG-0-1")
    assert decide(PROGRAM, only_small, OK, False, FULL_V5).choice == "cpu"  # 1 GiB holds no fold


def test_lightgbm_without_gpu_support_falls_back_or_fails_when_required() -> None:
    broken = Capability(ok=False, reason="cannot use the GPU: No OpenCL device found")
    decision = _decide(FakeNvml([("RTX 4060", 8, 7.5)]), capability=broken)
    assert decision.choice == "cpu" and "No OpenCL device found" in decision.reason
    with pytest.raises(GpuRequiredError, match=r"a GPU is required .* No OpenCL device found"):
        _decide(FakeNvml([("RTX 4060", 8, 7.5)]), capability=broken, required=True)
    with pytest.raises(GpuRequiredError, match="NVML Shared Library Not Found"):
        _decide(
            FakeNvml([], init_error=OSError("NVML Shared Library Not Found")), capability=None, required=True
        )


def test_gpu_required_from_config_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPU_REQUIRED", raising=False)
    assert not gpu_required(PROGRAM)
    assert gpu_required(_program(required=True))
    monkeypatch.setenv("GPU_REQUIRED", "1")
    assert gpu_required(PROGRAM)


def test_gpu_errors_are_recognised() -> None:
    assert is_gpu_error(lightgbm.basic.LightGBMError("No OpenCL device found"))
    assert is_gpu_error(lightgbm.basic.LightGBMError("CUDA Tree Learner was not enabled in this build."))
    assert is_gpu_error(lightgbm.basic.LightGBMError("Check failed: out of memory"))
    assert not is_gpu_error(lightgbm.basic.LightGBMError("Check failed: num_leaves > 1"))
    assert not is_gpu_error(ValueError("gpu"))


@pytest.mark.slow  # a real LightGBM training in a child
def test_capability_check_runs_once_per_environment(tmp_path: Path) -> None:
    probe = probe_gpus(FakeNvml([("RTX 4060", 8, 7.5)]), visible=None)
    first = check_capability("cuda", probe.devices[0], probe, tmp_path)
    assert not first.ok and not first.cached and "CUDA" in first.reason  # the PyPI wheel has no CUDA
    assert first.reason.startswith("cannot use the GPU: ")
    second = check_capability("cuda", probe.devices[0], probe, tmp_path)
    assert second.cached and second.reason == first.reason


@pytest.mark.slow
@pytest.mark.usefixtures("no_opencl_driver")
def test_opencl_learner_without_a_driver_says_which_platforms_it_found(tmp_path: Path) -> None:
    """The real listing child, on a machine that registers no OpenCL driver (a GPU box's is hidden)."""
    probe = probe_gpus(FakeNvml([("RTX 4060", 8, 7.5)]), visible=None)
    result = check_capability("gpu", probe.devices[0], probe, tmp_path)
    assert not result.ok and "no OpenCL platform from NVIDIA's driver" in result.reason
    assert "gpu.opencl_platform" in result.reason


@pytest.mark.skipif(sys.platform == "win32", reason=POSIX_SIGNALS)
def test_a_capability_child_killed_by_sigsegv_means_the_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crash = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    monkeypatch.setattr(capability_module, "CAPABILITY_SCRIPT", crash)
    probe = probe_gpus(FakeNvml([("RTX 4060", 8, 7.5)]), visible=None)
    result = check_capability("cuda", probe.devices[0], probe, tmp_path)
    assert not result.ok
    assert result.reason.startswith("cannot use the GPU: a test training on the GPU crashed with SIGSEGV")
    decision = decide(PROGRAM, probe, result, False, FULL_V5)
    assert decision.choice == "cpu" and "crashed with SIGSEGV" in decision.reason


@pytest.mark.skipif(sys.platform == "win32", reason=POSIX_SIGNALS)
def test_a_child_killed_by_a_signal_is_named() -> None:
    killed = run_child([sys.executable, "-c", f"import os; os.kill(os.getpid(), {int(signal.SIGKILL)})"], "x")
    assert not killed.ok and "crashed with SIGKILL" in killed.failure


def test_child_failures_become_sentences() -> None:
    failed = run_child([sys.executable, "-c", "raise SystemExit('no device')"], "the check")
    assert not failed.ok and failed.failure == "the check failed: no device"
    slow = run_child([sys.executable, "-c", "import time; time.sleep(5)"], "the check", timeout_s=0.5)
    assert not slow.ok and "did not finish within 0.5 s" in slow.failure


def test_size_parsing() -> None:
    assert parse_size("6GiB") == 6 * 2**30 and parse_size("7.5 GB") == int(7.5 * 2**30)
    assert parse_size("512MiB") == 512 * 2**20
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")


def test_a_gpu_error_in_one_fold_steps_down_and_is_recorded(version_dir: Path, tmp_path: Path) -> None:
    """A real GPU learner's error: the OpenCL learner's without an OpenCL driver; on a GPU box, where
    that learner works, the CUDA learner's, which the PyPI wheel lacks. The fold ends up on the CPU."""
    from numerflow.data.files import read_training

    frame = read_training(version_dir / "train.parquet", [f"feature_{i:04d}" for i in range(10)], ["target"])
    base = LightGBMParams(n_estimators=10, learning_rate=0.1)
    prepared = prepare(version_dir, frame.feature_names, ["target"], base, tmp_path)
    fold = make_folds(prepared.eras, 3, 4)[1]
    learner, error = ("cuda", "CUDA") if opencl_driver_registered() else ("gpu", "OpenCL")
    ladder = [
        FallbackStep(name="gpu", params=base.model_copy(update={"device_type": learner})),
        # A lower step with other dataset parameters trains on the bins as built.
        FallbackStep(name="cpu", params=base.model_copy(update={"max_bin": 15})),
    ]
    result = fit_fold_on_ladder(prepared, fold, "target", ladder, seed=1, models_dir=tmp_path / "models")
    assert result.step == "cpu" and result.device_type == "cpu"
    [step] = result.downgrades
    assert (step["from"], step["to"]) == ("gpu", "cpu") and error in step["error"]
    assert np.isfinite(lightgbm.Booster(model_file=str(result.model_path)).predict(frame.features[:5])).all()

    with pytest.raises(lightgbm.basic.LightGBMError):  # the last step's error is not swallowed
        fit_fold_on_ladder(prepared, fold, "target", ladder[:1], seed=1, models_dir=tmp_path / "m2")


def test_results_recorded_before_the_rename_still_read_their_step() -> None:
    """Fold-cache records and manifests written before "tier" became "step" keep their value."""
    from numerflow.train.final import FinalResult
    from numerflow.train.fit import FoldResult

    common = {"target": "target", "model_path": "m.txt", "seconds": 1.0, "device_type": "gpu"}
    old_fold = {**common, "fold": 0, "oof_path": "o.parquet", "train_rows": 2, "validation_rows": 1}
    assert FoldResult.model_validate({**old_fold, "tier": "gpu"}).step == "gpu"
    assert FinalResult.model_validate({**common, "rows": 3, "tier": "cpu"}).step == "cpu"
    assert FoldResult.model_validate({**old_fold, "step": "cuda"}).model_dump()["step"] == "cuda"
