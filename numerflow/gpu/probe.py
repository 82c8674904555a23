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
    mig: bool = False
    pci_bus: int | None = None  # matches the card to its OpenCL device (numerflow.gpu.numbering)


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
    handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
    uuids = [_text(nvml.nvmlDeviceGetUUID(h)) for h in handles]
    devices = []
    for index in _visible_indices(uuids, visible):
        devices.extend(_describe_device(nvml, index, handles[index], visible))
    reason = f"{len(devices)} NVIDIA device(s) visible of {count}"
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


def _describe_device(nvml: ModuleType, index: int, handle: object, visible: str | None) -> list[GpuDevice]:
    """The device itself, or its MIG slices when MIG is on (each slice has its own memory).
    A CUDA_VISIBLE_DEVICES of MIG uuids keeps only those slices."""
    name = _text(nvml.nvmlDeviceGetName(handle))
    wanted = [p.strip() for p in (visible or "").split(",") if p.strip().startswith("MIG-")]
    slices = _mig_slices(nvml, handle)
    if slices:
        chosen = [(u, h) for u, h in slices if not wanted or any(u.startswith(w) for w in wanted)]
        return [_device(nvml, index, h, f"{name} MIG {uuid}", uuid, mig=True) for uuid, h in chosen]
    if wanted:
        return []
    return [_device(nvml, index, handle, name, _text(nvml.nvmlDeviceGetUUID(handle)), mig=False)]


def _device(nvml: ModuleType, index: int, handle: object, name: str, uuid: str, mig: bool) -> GpuDevice:
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    return GpuDevice(
        index=index,
        name=name,
        uuid=uuid,
        total_bytes=int(memory.total),
        free_bytes=int(memory.free),
        utilization_percent=_utilization(nvml, handle),
        mig=mig,
        pci_bus=None if mig else _pci_bus(nvml, handle),
    )


def _mig_slices(nvml: ModuleType, handle: object) -> list[tuple[str, object]]:
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
    except Exception:
        return []  # MIG not supported on this device
    if current != getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1):
        return []
    slices = []
    for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig_handle = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except Exception:
            continue  # empty slot
        slices.append((_text(nvml.nvmlDeviceGetUUID(mig_handle)), mig_handle))
    return slices


def _visible_indices(uuids: list[str], visible: str | None) -> list[int]:
    """Devices CUDA will use, read as CUDA does: indices or UUID prefixes (GPU-... or MIG-...),
    up to the first invalid entry; an empty value hides every device."""
    if visible is None:
        return list(range(len(uuids)))
    chosen: list[int] = []
    for part in (p.strip() for p in visible.split(",")):
        if part.startswith("MIG-"):
            return list(range(len(uuids)))  # MIG slices are matched per device below
        if part.lstrip("-").isdigit():
            index = int(part)
            matches = [index] if 0 <= index < len(uuids) else []
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


def _pci_bus(nvml: ModuleType, handle: object) -> int | None:
    try:
        return int(nvml.nvmlDeviceGetPciInfo(handle).bus)
    except Exception:
        return None  # not every driver answers; the OpenCL match then goes by CUDA's number


def _cuda_version(nvml: ModuleType) -> str | None:
    try:
        version = int(nvml.nvmlSystemGetCudaDriverVersion())
    except Exception:
        return None
    return f"{version // 1000}.{(version % 1000) // 10}"


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
