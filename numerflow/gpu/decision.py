"""The device decision: CPU or GPU, which device, how much data, and the fallback ladder.

It is made from measured facts (numerflow.gpu.vram): the GPU only where it is faster than the
CPU (`gpu.device: auto` compares a fold's cells with the break-even), and only with data whose
estimated VRAM fits the chosen card; when it does not, the leanest smaller shape that fits
(or the CPU, as configured). The inputs are what NVML sees (`numerflow.gpu.probe`), whether
the installed LightGBM trains on that card and on which device (`numerflow.gpu.capability`),
whether the owner requires a GPU (`gpu.required` or `GPU_REQUIRED=1`), and the data's shape
(a `TrainingShape`: the run's plan gives it, numerflow.runs.device). A fold that still hits a
GPU error steps down the ladder to the CPU (`numerflow.train.device`)."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict

from numerflow.config.lightgbm_names import dataset_keys
from numerflow.config.models import LightGBMParams, NumerflowConfig, ProgramInputParams
from numerflow.gpu.capability import Capability, check_capability, default_cache_dir
from numerflow.gpu.numbering import cuda_ordinal
from numerflow.gpu.probe import GpuDevice, GpuProbe
from numerflow.gpu.vram import (
    BUILT_IN,
    Learner,
    TrainingShape,
    VramFit,
    VramModel,
    describe_fit,
    fit_to_vram,
    vram_model,
)
from numerflow.train.device import FallbackStep


class GpuRequiredError(RuntimeError):
    """A GPU is required but cannot be used; raised before any training starts."""


class DeviceDecision(BaseModel):
    choice: str  # the first step: gpu, cuda or cpu (manual or manual-cpu for model_params.yaml)
    reason: str
    device: GpuDevice | None = None
    capability: Capability | None = None
    ladder: list[FallbackStep]  # the chosen step first, the CPU last
    # Data limits the decision imposes (only ever tighter than the config's):
    era_stride: int | None = None
    max_features: int | None = None
    shape: TrainingShape | None = None  # what a fold was sized as (after the limits)
    vram: VramFit | None = None

    @property
    def params(self) -> LightGBMParams:
        return self.ladder[0].params


def gpu_required(program: ProgramInputParams) -> bool:
    return program.gpu.required or os.environ.get("GPU_REQUIRED", "").strip() in ("1", "true", "yes")


def learner_of(program: ProgramInputParams) -> Learner:
    return "cuda" if program.gpu.device == "cuda" else "gpu"


def choose_device(probe: GpuProbe, device_index: int | None) -> GpuDevice | None:
    if not probe.devices:
        return None
    if device_index is not None:
        matches = [d for d in probe.devices if d.index == device_index]
        return matches[0] if matches else None
    return max(probe.devices, key=lambda d: d.free_bytes)


def decide(
    program: ProgramInputParams,
    probe: GpuProbe,
    capability: Capability | None,
    required: bool,
    shape: TrainingShape | None,
    model: VramModel | None = None,
    can_reduce: bool = True,
) -> DeviceDecision:
    """Where this run trains. `capability` is None when it was not checked; `shape` None when the
    data are not known (the VRAM is then not checked); `model` defaults to the built-in constants;
    `can_reduce` is False once the data are binned (a Dask worker deciding for itself)."""
    gpu = program.gpu
    learner = learner_of(program)
    device = choose_device(probe, gpu.device_index)

    def cpu(why: str) -> DeviceDecision:
        if required:
            raise GpuRequiredError(
                f"a GPU is required (gpu.required in program_input_params.yaml or GPU_REQUIRED=1) but {why}. "
                "See docs/gpu.md to install a GPU-capable LightGBM, or set gpu.required: false"
            )
        return _on_cpu(program, f"training on CPU: {why}", device, capability, shape)

    if gpu.device == "cpu":
        return cpu("gpu.device is cpu")
    if device is None:
        index = gpu.device_index
        return cpu(
            probe.describe() if index is None else f"GPU index {index} is not visible ({probe.describe()})"
        )
    if capability is not None and not capability.ok:
        return cpu(f"{device.name}: {capability.reason}")
    if shape is None:
        reason = (
            f"{device.name}, {device.free_bytes / 2**30:.1f} GiB free; data shape not known, VRAM not checked"
        )
        return _on_gpu(program, reason, device, capability, shape, probe)
    model = model or BUILT_IN[learner]
    threshold = gpu.min_gpu_cells if gpu.min_gpu_cells is not None else model.min_gpu_cells
    if gpu.device == "auto" and not required and shape.fold_cells < threshold:
        source = "gpu.min_gpu_cells" if gpu.min_gpu_cells is not None else model.source
        return cpu(
            f"gpu.device auto: a fold of {shape.describe()} is below the GPU's break-even of {threshold:.2g} "
            f"cells ({source}), where the CPU is faster"
        )
    fit = fit_to_vram(shape, model, device.free_bytes, can_reduce and gpu.when_too_big == "reduce")
    figures = f"{device.name}: {describe_fit(fit, device.free_bytes, shape)}"
    if not fit.fits:
        why = (
            "gpu.when_too_big is cpu"
            if gpu.when_too_big == "cpu"
            else "nor with up to twice the era_stride and half the features"
            if can_reduce
            else "its rows and features are fixed here"
        )
        return cpu(f"{figures}; it does not fit ({why})")
    decision = _on_gpu(program, figures, device, capability, fit.shape, probe)
    return decision.model_copy(
        update={"era_stride": fit.era_stride, "max_features": fit.max_features, "vram": fit}
    )


def _cpu_params(program: ProgramInputParams) -> LightGBMParams:
    return program.params.model_copy(
        update={"device_type": "cpu", "gpu_platform_id": None, "gpu_device_id": None}
    )


def _on_cpu(
    program: ProgramInputParams, reason: str, device: GpuDevice | None, capability: Capability | None,
    shape: TrainingShape | None,
) -> DeviceDecision:  # fmt: skip
    ladder = [FallbackStep(name="cpu", params=_cpu_params(program))]
    return DeviceDecision(
        choice="cpu", reason=reason, device=device, capability=capability, ladder=ladder, shape=shape
    )


def _on_gpu(
    program: ProgramInputParams, reason: str, device: GpuDevice, capability: Capability | None,
    shape: TrainingShape | None, probe: GpuProbe,
) -> DeviceDecision:  # fmt: skip
    learner = learner_of(program)
    first = gpu_params(program, learner, device, probe, capability)
    # The CPU step keeps the dataset parameters: the data are binned once, with the first step's.
    keep = dataset_keys(first.model_dump(exclude_none=True))
    ladder = [
        FallbackStep(name=learner, params=first),
        FallbackStep(name="cpu", params=_cpu_params(program).model_copy(update=keep)),
    ]
    return DeviceDecision(
        choice=learner, reason=reason, device=device, capability=capability, ladder=ladder, shape=shape
    )


def gpu_params(
    program: ProgramInputParams,
    learner: str,
    device: GpuDevice,
    probe: GpuProbe,
    capability: Capability | None,
) -> LightGBMParams:
    """The user's parameters, their GPU-only ones (gpu.params), and the device by the learner's
    numbering: the OpenCL platform and device the capability check trained on, or CUDA's number."""
    if capability is not None and capability.device_id is not None:
        ids = {"gpu_platform_id": capability.platform_id, "gpu_device_id": capability.device_id}
    else:
        ordinal = cuda_ordinal(probe, device)
        ids = {"gpu_platform_id": None, "gpu_device_id": ordinal if learner == "cuda" else None}
    return LightGBMParams.model_validate(
        {**program.params.model_dump(), **program.gpu.params, "device_type": learner, **ids}
    )


def manual_decision(params: LightGBMParams, probe: GpuProbe) -> DeviceDecision:
    """The manual path (model_params.yaml) uses its parameters as written, CPU if no GPU."""
    ladder = [FallbackStep(name="manual", params=params)]
    if params.device_type != "cpu":
        if not probe.has_gpu:
            on_cpu = params.model_copy(update={"device_type": "cpu"})
            return DeviceDecision(
                choice="manual-cpu",
                reason=f"model_params.yaml asks for {params.device_type}, but {probe.describe()}",
                ladder=[FallbackStep(name="manual-cpu", params=on_cpu)],
            )
        ladder.append(FallbackStep(name="cpu", params=params.model_copy(update={"device_type": "cpu"})))
    return DeviceDecision(
        choice="manual", reason="params_source: manual (model_params.yaml as written)", ladder=ladder
    )


class DevicePolicy(BaseModel):
    """What the device decision depends on in the configuration, recorded in the run plan once:
    the run's decision, its final model and each Dask worker (for its own GPU) decide from it,
    never from the configuration again."""

    model_config = ConfigDict(frozen=True)

    params_source: str
    program: ProgramInputParams
    base: LightGBMParams  # the active parameter file's params, before any slot changes

    @classmethod
    def of(cls, config: NumerflowConfig) -> DevicePolicy:
        return cls(
            params_source=config.training.params_source,
            program=config.program_input_params,
            base=config.effective_params(),
        )


def decision_for(
    policy: DevicePolicy, probe: GpuProbe, shape: TrainingShape | None = None, can_reduce: bool = True
) -> DeviceDecision:
    """The decision for this machine and the data `shape` (numerflow.runs.device; None: the
    VRAM is not checked): manual parameters as written, or the measured GPU decision with this
    machine's calibration."""
    if policy.params_source == "manual":
        return manual_decision(policy.base, probe)
    program = policy.program
    model = vram_model(learner_of(program), default_cache_dir())
    capability = capability_for(program, probe)
    return decide(program, probe, capability, gpu_required(program), shape, model, can_reduce)


def capability_for(program: ProgramInputParams, probe: GpuProbe) -> Capability | None:
    """The capability check for the GPU a run would choose; None when no GPU would be used."""
    device = choose_device(probe, program.gpu.device_index)
    if device is None or program.gpu.device == "cpu":
        return None
    return check_capability(learner_of(program), device, probe, opencl_platform=program.gpu.opencl_platform)
