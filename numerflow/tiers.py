"""GPU tiers: pick LightGBM parameters by the free VRAM, check LightGBM can use the GPU at all,
and fall back tier by tier, down to the CPU, when a fold hits a GPU error.

The decision needs three answers: what NVML sees (`numerflow.gpu`), whether the installed
LightGBM trains on the GPU (a tiny training in a subprocess, cached per environment), and
whether the owner requires a GPU (`gpu.required` or `GPU_REQUIRED=1`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import lightgbm
from pydantic import BaseModel

from numerflow.config.models import DATASET_FIELDS, LightGBMParams, NumerflowConfig, ProgramInputParams
from numerflow.gpu import GIB, GpuDevice, GpuProbe, probe_gpus
from numerflow.io import write_json_atomic

GPU_ERROR_MARKERS = (
    "opencl",
    "cuda",
    "gpu",
    "out of memory",
    "cl_mem_object_allocation_failure",
    "cl_out_of_resources",
    "bad_alloc",
    "memory allocation",
)
CAPABILITY_SCRIPT = """
import sys
import numpy as np
import lightgbm as lgb
X = np.random.default_rng(0).random((1000, 5))
params = {"objective": "regression", "device_type": sys.argv[1], "verbosity": -1, "num_leaves": 7}
if len(sys.argv) > 2:
    params["gpu_device_id"] = int(sys.argv[2])
lgb.train(params, lgb.Dataset(X, label=X[:, 0]), num_boost_round=2)
print("ok")
"""


class GpuRequiredError(RuntimeError):
    """A GPU is required but cannot be used; raised before any training starts."""


class Capability(BaseModel):
    ok: bool
    reason: str
    cached: bool = False


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


def decision_for(config: NumerflowConfig, probe: GpuProbe) -> TierDecision:
    """The tier for this machine: manual parameters as written, or the VRAM-sized program tiers."""
    if config.training.params_source == "manual":
        return manual_decision(config.effective_params(), probe)
    program = config.program_input_params
    return decide(program, probe, capability_for(program, probe), gpu_required(program))


def apply_data_limits(config: NumerflowConfig, decision: TierDecision) -> NumerflowConfig:
    """A tier's row_limit/max_features tighten the user's own, never loosen them."""
    if decision.row_limit is None and decision.max_features is None:
        return config
    updated = config.model_copy(deep=True)
    updated.training.data.row_limit = _tighter(config.training.data.row_limit, decision.row_limit)
    updated.features.max_features = _tighter(config.features.max_features, decision.max_features)
    return updated


def _tighter(user: int | None, tier: int | None) -> int | None:
    return tier if user is None else user if tier is None else min(user, tier)


def is_gpu_error(exc: BaseException) -> bool:
    """LightGBM errors from the GPU learner: no device, driver failures, out of memory."""
    if isinstance(exc, MemoryError):
        return True
    if not isinstance(exc, lightgbm.basic.LightGBMError):
        return False
    message = str(exc).lower()
    return any(marker in message for marker in GPU_ERROR_MARKERS)


def check_capability(
    learner: str, device: GpuDevice | None, probe: GpuProbe, cache_dir: Path | None = None
) -> Capability:
    """Can the installed LightGBM train with `device_type=learner`? A tiny training in a
    subprocess (a broken driver cannot take the flow down), cached per environment."""
    cache = (cache_dir or default_cache_dir()) / "gpu-capability.json"
    key = _environment_key(learner, device, probe)
    known = _read_cache(cache)
    if key in known:
        return Capability(ok=known[key]["ok"], reason=known[key]["reason"], cached=True)
    command = [sys.executable, "-c", CAPABILITY_SCRIPT, learner]
    if device is not None:
        command.append(str(device.index))
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=180)
        ok = done.returncode == 0 and done.stdout.strip().endswith("ok")
        reason = "a test training on the GPU succeeded" if ok else _last_error(done.stderr)
    except subprocess.TimeoutExpired:
        ok, reason = False, "a test training on the GPU did not finish within 180 s"
    known[key] = {"ok": ok, "reason": reason}
    write_json_atomic(cache, known)
    return Capability(ok=ok, reason=reason)


def capability_for(program: ProgramInputParams, probe: GpuProbe) -> Capability | None:
    """The capability check for the GPU a run would choose; None when no GPU is visible."""
    device = choose_device(probe, program.gpu.device_index)
    return check_capability(program.gpu.learner, device, probe) if device is not None else None


def default_cache_dir() -> Path:
    return Path(os.environ.get("NUMERFLOW_CACHE_DIR") or Path.home() / ".cache" / "numerflow")


def _environment_key(learner: str, device: GpuDevice | None, probe: GpuProbe) -> str:
    library = Path(lightgbm.__file__).parent / "lib" / "lib_lightgbm.so"
    stamp = f"{library.stat().st_size}:{library.stat().st_mtime_ns}" if library.exists() else "?"
    parts = [sys.executable, lightgbm.__version__, stamp, learner, str(probe.driver_version),
             device.uuid if device else "-"]  # fmt: skip
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _read_cache(path: Path) -> dict[str, dict]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _last_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "the test training failed"


def parse_size(text: str) -> int:
    """'6GiB', '7.5 GB', '512MiB' -> bytes (GB and GiB both count as 2**30, as NVML reports)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([GgMm])i?[Bb]?\s*", text)
    if not match:
        raise ValueError(f"{text!r} is not a size like 6GiB or 512MiB")
    value, unit = float(match.group(1)), match.group(2).upper()
    return int(value * (GIB if unit == "G" else 1024**2))


def assumed_probe(free_bytes: int) -> GpuProbe:
    """A probe of one imaginary card with `free_bytes` free, to preview the tier decision."""
    total = max(free_bytes, 8 * GIB)
    card = GpuDevice(
        index=0, name="assumed GPU", uuid="GPU-assumed", total_bytes=total, free_bytes=free_bytes
    )
    return GpuProbe(devices=[card], reason="assumed with --assume-free-vram")


def gpu_report(config: NumerflowConfig, assume_free_bytes: int | None = None) -> dict[str, object]:
    """The probe, the capability check and the tier decision, as `numerflow gpu` prints them."""
    program = config.program_input_params
    if assume_free_bytes is not None:
        probe = assumed_probe(assume_free_bytes)
        capability: Capability | None = Capability(ok=True, reason="assumed with --assume-free-vram")
    else:
        probe = probe_gpus()
        capability = capability_for(program, probe)
    report: dict[str, object] = {
        "probe": probe.model_dump(mode="json"),
        "capability": capability.model_dump() if capability else None,
        "required": gpu_required(program),
    }
    try:
        decision = decide(program, probe, capability, gpu_required(program))
    except GpuRequiredError as exc:
        report["decision"] = {"tier": None, "error": str(exc)}
        return report
    report["decision"] = {
        "tier": decision.tier,
        "reason": decision.reason,
        "device_type": decision.params.device_type,
        "fallbacks": [step.tier for step in decision.ladder[1:]],
        "params": decision.params.model_dump(mode="json"),
        "row_limit": decision.row_limit,
        "max_features": decision.max_features,
    }
    return report
