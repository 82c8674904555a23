"""What `numerflow gpu` shows: the probe, the capability check, the data's shape, the VRAM
estimate and the decision; or a preview of the decision for an assumed card and data."""

from __future__ import annotations

import re

from numerflow.config.models import NumerflowConfig
from numerflow.gpu.capability import Capability, default_cache_dir
from numerflow.gpu.decision import GpuRequiredError, capability_for, decide, gpu_required, learner_of
from numerflow.gpu.probe import GIB, GpuDevice, GpuProbe, probe_gpus
from numerflow.gpu.vram import TrainingShape, vram_model


def parse_size(text: str) -> int:
    """'6GiB', '7.5 GB', '512MiB' -> bytes (GB and GiB both count as 2**30, as NVML reports)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([GgMm])i?[Bb]?\s*", text)
    if not match:
        raise ValueError(f"{text!r} is not a size like 6GiB or 512MiB")
    value, unit = float(match.group(1)), match.group(2).upper()
    return int(value * (GIB if unit == "G" else 1024**2))


def assumed_probe(free_bytes: int) -> GpuProbe:
    """A probe of one imaginary card with `free_bytes` free, to preview the decision."""
    total = max(free_bytes, 8 * GIB)
    card = GpuDevice(
        index=0, name="assumed GPU", uuid="GPU-assumed", total_bytes=total, free_bytes=free_bytes
    )
    return GpuProbe(devices=[card], reason="assumed with --assume-free-vram")


def gpu_report(
    config: NumerflowConfig,
    shape: TrainingShape | None,
    shape_source: str,
    assume_free_bytes: int | None = None,
) -> dict[str, object]:
    """The probe, the capability check, the decision for `shape` (numerflow.runs.device gives the
    configured data's; None: not known), as `numerflow gpu` prints them."""
    program = config.program_input_params
    if assume_free_bytes is not None:
        probe = assumed_probe(assume_free_bytes)
        capability: Capability | None = Capability(ok=True, reason="assumed with --assume-free-vram")
    else:
        probe = probe_gpus()
        capability = capability_for(program, probe)
    model = vram_model(learner_of(program), default_cache_dir())
    report: dict[str, object] = {
        "probe": probe.model_dump(mode="json"),
        "capability": capability.model_dump() if capability else None,
        "required": gpu_required(program),
        "shape": {
            "source": shape_source,
            **(shape.model_dump() if shape else {}),
            "fold_cells": shape.fold_cells if shape else None,
        },
        "vram_model": model.model_dump(mode="json"),
    }
    try:
        decision = decide(program, probe, capability, gpu_required(program), shape, model)
    except GpuRequiredError as exc:
        report["decision"] = {"choice": None, "error": str(exc)}
        return report
    params = decision.params
    report["decision"] = {
        "choice": decision.choice,
        "reason": decision.reason,
        "device_type": params.device_type,
        "gpu_platform_id": params.gpu_platform_id,
        "gpu_device_id": params.gpu_device_id,
        "estimate_bytes": decision.vram.fitted_bytes if decision.vram else None,
        "free_bytes": decision.device.free_bytes if decision.device else None,
        "era_stride": decision.era_stride,
        "max_features": decision.max_features,
        "fallbacks": [step.name for step in decision.ladder[1:]],
        "params": params.model_dump(mode="json"),
    }
    return report


def report_lines(report: dict[str, object]) -> list[str]:
    """The report as text, one line a fact."""
    probe, decision, shape = report["probe"], report["decision"], report["shape"]
    assert isinstance(probe, dict) and isinstance(decision, dict) and isinstance(shape, dict)
    lines = [f"devices:    {len(probe['devices'])} ({probe['reason']})"]
    for device in probe["devices"]:
        lines.append(
            f"  #{device['index']} {device['name']}: {device['free_bytes'] / GIB:.1f} of "
            f"{device['total_bytes'] / GIB:.1f} GiB free"
        )
    capability = report["capability"]
    if isinstance(capability, dict):
        lines.append(
            f"LightGBM:   {'can' if capability['ok'] else 'cannot'} train on the GPU ({capability['reason']})"
        )
    if shape.get("rows"):
        lines.append(
            f"data:       {shape['rows']:,} rows x {shape['features']:,} features at era_stride "
            f"{shape['era_stride']}; a fold {shape['fold_cells']:.2e} cells ({shape['source']})"
        )
    else:
        lines.append(f"data:       {shape['source']}")
    if decision.get("choice") is None:
        lines.append(f"decision:   none: {decision['error']}")
        return lines
    ids = [f"{name} {decision[key]}" for name, key in (("OpenCL platform", "gpu_platform_id"),
           ("device", "gpu_device_id")) if decision[key] is not None]  # fmt: skip
    where = decision["device_type"] + (f" ({', '.join(ids)})" if ids else "")
    lines.append(f"decision:   {where}: {decision['reason']}")
    if decision["estimate_bytes"] is not None:
        lines.append(
            f"VRAM:       about {decision['estimate_bytes'] / GIB:.2f} GiB needed, "
            f"{decision['free_bytes'] / GIB:.1f} GiB free"
        )
    limits = [f"{key} {decision[key]}" for key in ("era_stride", "max_features") if decision[key] is not None]
    if limits:
        lines.append(f"data cut:   {', '.join(limits)}")
    lines.append(f"fallbacks:  {' -> '.join(decision['fallbacks']) or '-'}")
    return lines
