"""What `numerflow gpu` shows: the probe, the capability check and the decision, or a
preview of the decision for an assumed card."""

from __future__ import annotations

import re

from numerflow.config.models import NumerflowConfig
from numerflow.gpu.capability import Capability
from numerflow.gpu.probe import GIB, GpuDevice, GpuProbe, probe_gpus
from numerflow.gpu.tiers import GpuRequiredError, capability_for, decide, gpu_required


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
