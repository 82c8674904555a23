"""GPU tiers: pick LightGBM parameters by the free VRAM and build the fallback ladder down
to the CPU.

The decision needs three answers: what NVML sees (`numerflow.gpu.probe`), whether the
installed LightGBM trains on the GPU (`numerflow.gpu.capability`), and whether the owner
requires a GPU (`gpu.required` or `GPU_REQUIRED=1`)."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict

from numerflow.config.models import DATASET_FIELDS, LightGBMParams, NumerflowConfig, ProgramInputParams
from numerflow.gpu.capability import Capability, check_capability
from numerflow.gpu.probe import GIB, GpuDevice, GpuProbe


class GpuRequiredError(RuntimeError):
    """A GPU is required but cannot be used; raised before any training starts."""


class TierStep(BaseModel):
    """One rung of the fallback ladder: a tier name and the parameters it trains with."""

    tier: str
    params: LightGBMParams


class TierDecision(BaseModel):
    tier: str
    reason: str
    device: GpuDevice | None = None
    capability: Capability | None = None
    ladder: list[TierStep]  # the chosen tier first, the CPU last
    row_limit: int | None = None
    max_features: int | None = None

    @property
    def params(self) -> LightGBMParams:
        return self.ladder[0].params


def gpu_required(program: ProgramInputParams) -> bool:
    return program.gpu.required or os.environ.get("GPU_REQUIRED", "").strip() in ("1", "true", "yes")


def choose_device(probe: GpuProbe, device_index: int | None) -> GpuDevice | None:
    if not probe.devices:
        return None
    if device_index is not None:
        matches = [d for d in probe.devices if d.index == device_index]
        return matches[0] if matches else None
    return max(probe.devices, key=lambda d: d.free_bytes)


def decide(
    program: ProgramInputParams, probe: GpuProbe, capability: Capability | None, required: bool
) -> TierDecision:
    """The tier for this run. `capability` is None when it was not checked (no usable device)."""
    device = choose_device(probe, program.gpu.device_index)
    why_not = None
    if device is None:
        why_not = (
            probe.describe()
            if program.gpu.device_index is None
            else (f"GPU index {program.gpu.device_index} is not visible ({probe.describe()})")
        )
    elif capability is not None and not capability.ok:
        why_not = f"LightGBM cannot train on {device.name}: {capability.reason}"
    if why_not is not None:
        if required:
            raise GpuRequiredError(
                f"a GPU is required (gpu.required in program_input_params.yaml or GPU_REQUIRED=1) "
                f"but {why_not}. See README 'GPU training' to install a GPU-capable LightGBM, or "
                "set gpu.required: false to train on the CPU"
            )
        return _decision(program, "cpu", f"training on CPU: {why_not}", None, capability)
    assert device is not None
    free_gib = device.free_bytes / GIB
    for name, tier in program.ordered_tiers():
        if name != "cpu" and free_gib >= tier.min_free_vram_gib:
            reason = (
                f"{device.name} has {free_gib:.1f} GiB free (tier {name} needs {tier.min_free_vram_gib:g})"
            )
            return _decision(program, name, reason, device, capability)
    reason = f"{device.name} has only {free_gib:.1f} GiB free, below every GPU tier"
    if required:
        raise GpuRequiredError(f"a GPU is required but {reason}")
    return _decision(program, "cpu", f"training on CPU: {reason}", device, capability)


def _decision(
    program: ProgramInputParams,
    name: str,
    reason: str,
    device: GpuDevice | None,
    capability: Capability | None,
) -> TierDecision:
    tiers = program.ordered_tiers()
    names = [n for n, _ in tiers]
    chosen = program.tiers[name]
    first = tier_params(program, name, device, program.params)
    # Lower rungs keep the run's dataset parameters: the data is binned once, with the first rung's.
    ladder = [TierStep(tier=name, params=first)]
    for lower in names[names.index(name) + 1 :]:
        params = tier_params(program, lower, device, program.params)
        keep = {f: getattr(first, f) for f in DATASET_FIELDS}
        ladder.append(TierStep(tier=lower, params=params.model_copy(update=keep)))
    return TierDecision(
        tier=name,
        reason=reason,
        device=device,
        capability=capability,
        ladder=ladder,
        row_limit=chosen.row_limit,
        max_features=chosen.max_features,
    )


def tier_params(
    program: ProgramInputParams, name: str, device: GpuDevice | None, base: LightGBMParams
) -> LightGBMParams:
    tier = program.tiers[name]
    update = dict(tier.params)
    if name == "cpu":
        update.update(device_type="cpu", gpu_device_id=None)
    else:
        update.setdefault("device_type", program.gpu.learner)
        update.setdefault("gpu_device_id", device.index if device is not None else None)
    return LightGBMParams.model_validate({**base.model_dump(), **update})


def manual_decision(params: LightGBMParams, probe: GpuProbe) -> TierDecision:
    """The manual path (model_params.yaml) uses its parameters as written, CPU if no GPU."""
    ladder = [TierStep(tier="manual", params=params)]
    if params.device_type != "cpu":
        if not probe.has_gpu:
            return TierDecision(
                tier="manual-cpu",
                reason=f"model_params.yaml asks for {params.device_type}, but {probe.describe()}",
                ladder=[TierStep(tier="manual-cpu", params=params.model_copy(update={"device_type": "cpu"}))],
            )
        ladder.append(TierStep(tier="cpu", params=params.model_copy(update={"device_type": "cpu"})))
    return TierDecision(
        tier="manual", reason="params_source: manual (model_params.yaml as written)", ladder=ladder
    )


class DevicePolicy(BaseModel):
    """What the device decision depends on in the configuration; a Dask worker decides from it
    for its own GPU."""

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


def decision_for(policy: DevicePolicy, probe: GpuProbe) -> TierDecision:
    """The tier for this machine: manual parameters as written, or the VRAM-sized program tiers."""
    if policy.params_source == "manual":
        return manual_decision(policy.base, probe)
    program = policy.program
    return decide(program, probe, capability_for(program, probe), gpu_required(program))


def capability_for(program: ProgramInputParams, probe: GpuProbe) -> Capability | None:
    """The capability check for the GPU a run would choose; None when no GPU is visible."""
    device = choose_device(probe, program.gpu.device_index)
    return check_capability(program.gpu.learner, device, probe) if device is not None else None
