"""From NVML's card to the number each GPU learner calls it by.

Three numberings disagree: NVML numbers every physical card (PCI order); CUDA numbers only the
cards `CUDA_VISIBLE_DEVICES` leaves, from 0, in the order it lists them (so NVML's card 1 under
`CUDA_VISIBLE_DEVICES=1` is CUDA device 0); OpenCL numbers platforms (one per installed driver:
an Intel iGPU, pocl, NVIDIA) and devices within each. NVIDIA's OpenCL platform follows CUDA's
visibility and numbering, and also reports each device's PCI bus, which settles the match when
the cards differ. The probe lists the visible devices in CUDA's order, so a device's position
there is its CUDA number (CUDA orders by PCI bus, like NVML, when `CUDA_DEVICE_ORDER=PCI_BUS_ID`
or when the cards are of one model).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from numerflow.gpu.probe import GpuDevice, GpuProbe

NVIDIA = "nvidia"


class OpenClDevice(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    vendor: str
    kind: str = "gpu"  # cpu, gpu, accelerator, other
    pci_bus: int | None = None  # NVIDIA's driver reports it; others do not


class OpenClPlatform(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    vendor: str
    devices: list[OpenClDevice] = []

    def label(self, index: int) -> str:
        return f"{index}: {self.name} ({self.vendor}, {len(self.devices)} device(s))"


class OpenClChoice(BaseModel):
    """What LightGBM's OpenCL learner is told: gpu_platform_id and gpu_device_id."""

    model_config = ConfigDict(frozen=True)

    platform_id: int
    device_id: int
    platform: str
    device: str


class DeviceNumberingError(ValueError):
    """The card NVML chose has no OpenCL device to match; the message lists what there is."""


def cuda_ordinal(probe: GpuProbe, device: GpuDevice) -> int:
    """CUDA's number for `device`: its position among the devices CUDA can see."""
    return probe.devices.index(device)


def choose_opencl_device(
    platforms: list[OpenClPlatform], device: GpuDevice, ordinal: int, wanted: str | None = None
) -> OpenClChoice:
    """The OpenCL platform and device for NVML's `device`: the NVIDIA platform (or the one
    `wanted` names: its index, or part of its name or vendor), then the device on the same PCI
    bus, else the one at CUDA's `ordinal`."""
    platform_id = _platform_index(platforms, wanted)
    platform = platforms[platform_id]
    device_id = _device_index(platform, device, ordinal)
    if device_id is None:
        raise DeviceNumberingError(
            f"OpenCL platform {platform.label(platform_id)} has no device matching {device.name} "
            f"(CUDA device {ordinal}, PCI bus {device.pci_bus}); its devices: "
            f"{[d.name for d in platform.devices]}. Check CUDA_VISIBLE_DEVICES and gpu.device_index"
        )
    return OpenClChoice(
        platform_id=platform_id,
        device_id=device_id,
        platform=platform.name,
        device=platform.devices[device_id].name,
    )


def _platform_index(platforms: list[OpenClPlatform], wanted: str | None) -> int:
    found = "; ".join(p.label(i) for i, p in enumerate(platforms)) or "none (no OpenCL driver registered)"
    if wanted is not None and wanted.strip().isdigit():
        matches = [int(wanted)] if int(wanted) < len(platforms) else []
    else:
        needle = (wanted or NVIDIA).strip().lower()
        matches = [i for i, p in enumerate(platforms) if needle in f"{p.name} {p.vendor}".lower()]
    if not matches:
        named = f"gpu.opencl_platform {wanted!r}" if wanted else "NVIDIA's driver"
        raise DeviceNumberingError(
            f"no OpenCL platform from {named}; found: {found}. Install the GPU vendor's OpenCL runtime, "
            "or set gpu.opencl_platform in program_input_params.yaml to one of these (index or name)"
        )
    return matches[0]


def _device_index(platform: OpenClPlatform, device: GpuDevice, ordinal: int) -> int | None:
    if device.pci_bus is not None:
        on_bus = [i for i, d in enumerate(platform.devices) if d.pci_bus == device.pci_bus]
        if on_bus:
            return on_bus[0]
    return ordinal if ordinal < len(platform.devices) else None
