"""NVML's card -> CUDA's number and OpenCL's platform/device, with simulated platform lists."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from numerflow.gpu.numbering import (
    DeviceNumberingError,
    OpenClDevice,
    OpenClPlatform,
    choose_opencl_device,
    cuda_ordinal,
)
from numerflow.gpu.opencl import list_platforms
from numerflow.gpu.probe import probe_gpus
from tests.conftest import hide_opencl_drivers, opencl_driver_registered
from tests.fake_nvml import FakeNvml

INTEL = OpenClPlatform(
    name="Intel(R) OpenCL HD Graphics",
    vendor="Intel(R) Corporation",
    devices=[OpenClDevice(name="Intel(R) UHD Graphics 770", vendor="Intel(R) Corporation")],
)
POCL = OpenClPlatform(
    name="Portable Computing Language",
    vendor="The pocl project",
    devices=[OpenClDevice(name="cpu-haswell-AMD EPYC", vendor="AuthenticAMD", kind="cpu")],
)


def nvidia(*cards: tuple[str, int | None]) -> OpenClPlatform:
    return OpenClPlatform(
        name="NVIDIA CUDA",
        vendor="NVIDIA Corporation",
        devices=[OpenClDevice(name=name, vendor="NVIDIA Corporation", pci_bus=bus) for name, bus in cards],
    )


def test_intel_first_nvidia_second_picks_nvidia() -> None:
    probe = probe_gpus(FakeNvml([("NVIDIA GeForce RTX 4060", 8, 7.5)]), visible=None)
    card = probe.devices[0]
    choice = choose_opencl_device([INTEL, nvidia(("NVIDIA GeForce RTX 4060", None))], card, 0)
    assert (choice.platform_id, choice.device_id) == (1, 0)
    assert choice.platform == "NVIDIA CUDA" and choice.device == "NVIDIA GeForce RTX 4060"


def test_pocl_and_nvidia_as_on_the_measured_h100() -> None:
    probe = probe_gpus(FakeNvml([("NVIDIA H100 80GB HBM3", 80, 79)]), visible=None)
    choice = choose_opencl_device([POCL, nvidia(("NVIDIA H100 80GB HBM3", None))], probe.devices[0], 0)
    assert choice.platform_id == 1


def test_the_device_on_the_same_pci_bus_wins_over_the_position() -> None:
    # Two different cards: CUDA's default order (fastest first) can differ from NVML's PCI order.
    probe = probe_gpus(FakeNvml([("RTX 3060", 12, 11), ("RTX 4090", 24, 23)]), visible=None)
    platform = nvidia(("RTX 4090", 0x11), ("RTX 3060", 0x10))
    first = probe.devices[0]
    assert first.pci_bus == 0x10
    chosen = choose_opencl_device([platform], first, cuda_ordinal(probe, first))
    assert (chosen.device_id, chosen.device) == (1, "RTX 3060")


def test_under_cuda_visible_devices_the_position_is_cudas_number() -> None:
    probe = probe_gpus(FakeNvml([("RTX 3090", 24, 20), ("RTX 4060", 8, 7.5)]), visible="1")
    [card] = probe.devices
    assert card.index == 1 and cuda_ordinal(probe, card) == 0
    # NVIDIA's OpenCL follows CUDA_VISIBLE_DEVICES: one device, number 0 (no PCI bus reported)
    choice = choose_opencl_device([INTEL, nvidia(("RTX 4060", None))], card, cuda_ordinal(probe, card))
    assert (choice.platform_id, choice.device_id) == (1, 0)


def test_the_user_names_the_platform() -> None:
    probe = probe_gpus(FakeNvml([("RTX 4060", 8, 7.5)]), visible=None)
    platforms = [INTEL, nvidia(("RTX 4060", None)), nvidia(("RTX 4060", None))]
    assert choose_opencl_device(platforms, probe.devices[0], 0, wanted="2").platform_id == 2
    assert choose_opencl_device(platforms, probe.devices[0], 0, wanted="intel").platform_id == 0


def test_no_match_names_what_there_is_and_the_fix() -> None:
    probe = probe_gpus(FakeNvml([("RTX 4060", 8, 7.5)]), visible=None)
    with pytest.raises(
        DeviceNumberingError, match=r"found: 0: Intel\(R\) OpenCL HD Graphics .*gpu.opencl_platform"
    ):
        choose_opencl_device([INTEL], probe.devices[0], 0)
    with pytest.raises(DeviceNumberingError, match="none \\(no OpenCL driver registered\\)"):
        choose_opencl_device([], probe.devices[0], 0)
    with pytest.raises(DeviceNumberingError, match=r"gpu\.opencl_platform 'amd'"):
        choose_opencl_device([INTEL], probe.devices[0], 0, wanted="amd")
    with pytest.raises(DeviceNumberingError, match="has no device matching RTX 4060 \\(CUDA device 1"):
        choose_opencl_device([nvidia(("RTX 4060", None))], probe.devices[0], 1)


def _child_listing() -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "numerflow.gpu.opencl"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow  # children that load LightGBM
def test_listing_through_lightgbms_own_opencl_loader(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """LightGBM's loader lists what this machine registers (on a GPU box, NVIDIA's platform) and
    the child prints the same as JSON; with no driver it finds no platform, without an error."""
    here = [platform.model_dump() for platform in list_platforms()]
    if not opencl_driver_registered():
        assert here == []
    assert _child_listing() == here
    hide_opencl_drivers(tmp_path, monkeypatch)
    assert _child_listing() == []
