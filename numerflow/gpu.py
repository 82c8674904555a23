"""GPU probing with NVML (pynvml), never fatal: no library, driver or device means CPU.

The NVML module is a parameter so tests can feed simulated answers.
"""

from __future__ import annotations

import contextlib
import os
from types import ModuleType

from pydantic import BaseModel, ConfigDict

GIB = 1024**3


class GpuDevice(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    name: str
    uuid: str
    total_bytes: int
    free_bytes: int
    utilization_percent: int | None = None


class GpuProbe(BaseModel):
    """What the machine offers; `devices` is empty when training must use the CPU."""

    model_config = ConfigDict(frozen=True)

    devices: list[GpuDevice] = []
    driver_version: str | None = None
    cuda_version: str | None = None
    reason: str

    @property
    def has_gpu(self) -> bool:
        return bool(self.devices)

    def describe(self) -> str:
        if not self.devices:
            return f"CPU only: {self.reason}"
        cards = ", ".join(
            f"#{d.index} {d.name} ({d.free_bytes / GIB:.1f}/{d.total_bytes / GIB:.1f} GiB free)"
            for d in self.devices
        )
        return f"{len(self.devices)} GPU(s): {cards}; driver {self.driver_version}"


def probe_gpus(nvml: ModuleType | None = None, visible: str | None = None) -> GpuProbe:
    """Probe NVIDIA GPUs; `visible` defaults to `CUDA_VISIBLE_DEVICES`."""
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            return GpuProbe(reason="pynvml (nvidia-ml-py) is not installed")
    try:
        nvml.nvmlInit()
    except Exception as exc:  # NVMLError subclasses: library missing, driver not loaded, ...
        return GpuProbe(reason=f"NVML unavailable: {exc}")
    try:
        return _read_devices(nvml, visible if visible is not None else os.environ.get("CUDA_VISIBLE_DEVICES"))
    except Exception as exc:
        return GpuProbe(reason=f"NVML query failed: {exc}")
    finally:
        # Shutting down a half-initialised NVML must not hide the probe's answer.
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()


def _read_devices(nvml: ModuleType, visible: str | None) -> GpuProbe:
    count = nvml.nvmlDeviceGetCount()
    chosen = _visible_indices(nvml, count, visible)
    devices = []
    for index in chosen:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        devices.append(
            GpuDevice(
                index=index,
                name=_text(nvml.nvmlDeviceGetName(handle)),
                uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                total_bytes=int(memory.total),
                free_bytes=int(memory.free),
                utilization_percent=_utilization(nvml, handle),
            )
        )
    reason = f"{len(devices)} of {count} NVIDIA device(s) visible"
    if not devices:
        reason = "no NVIDIA device visible" + (
            f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
        )
    return GpuProbe(
        devices=devices,
        driver_version=_text(nvml.nvmlSystemGetDriverVersion()),
        cuda_version=_cuda_version(nvml),
        reason=reason,
    )


def _visible_indices(nvml: ModuleType, count: int, visible: str | None) -> list[int]:
    """Devices CUDA will use, read as CUDA does: indices or UUID prefixes, up to the first
    invalid entry; an empty value hides every device."""
    if visible is None:
        return list(range(count))
    uuids = [_text(nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(i))) for i in range(count)]
    chosen: list[int] = []
    for part in (p.strip() for p in visible.split(",")):
        if part.lstrip("-").isdigit():
            index = int(part)
            matches = [index] if 0 <= index < count else []
        else:
            matches = [i for i, uuid in enumerate(uuids) if part and uuid.startswith(part)]
        if len(matches) != 1 or matches[0] in chosen:
            break
        chosen.append(matches[0])
    return chosen


def _utilization(nvml: ModuleType, handle: object) -> int | None:
    try:
        return int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except Exception:
        return None  # not supported on every device (e.g. MIG slices)


def _cuda_version(nvml: ModuleType) -> str | None:
    try:
        version = int(nvml.nvmlSystemGetCudaDriverVersion())
    except Exception:
        return None
    return f"{version // 1000}.{(version % 1000) // 10}"


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def device_for(requested: str, probe: GpuProbe) -> tuple[str, str]:
    """The LightGBM device type to train with, and why; GPU requests fall back to CPU."""
    if requested == "cpu":
        return "cpu", "device_type cpu in the config"
    if not probe.has_gpu:
        return "cpu", f"device_type {requested} asked for, but {probe.describe()}; training on CPU"
    return requested, f"device_type {requested} on {probe.describe()}"
