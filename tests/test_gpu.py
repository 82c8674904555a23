from numerflow.gpu.probe import GIB, probe_gpus
from tests.fake_nvml import FakeNvml


def test_missing_library_means_cpu() -> None:
    probe = probe_gpus(FakeNvml([], init_error=OSError("NVML Shared Library Not Found")), visible=None)
    assert not probe.has_gpu and "Library Not Found" in probe.reason


def test_zero_devices_means_cpu() -> None:
    probe = probe_gpus(FakeNvml([]), visible=None)
    assert not probe.has_gpu and probe.driver_version == "555.42"


def test_card_details_and_visibility() -> None:
    nvml = FakeNvml([("RTX 4060", 8, 6), ("RTX 3090", 24, 20)])
    probe = probe_gpus(nvml, visible=None)
    assert [d.name for d in probe.devices] == ["RTX 4060", "RTX 3090"]
    assert probe.devices[0].free_bytes == 6 * GIB and probe.cuda_version == "12.4"
    assert nvml.shutdowns == 1
    hidden = probe_gpus(nvml, visible="1")
    assert [d.index for d in hidden.devices] == [1]
    assert not probe_gpus(nvml, visible="").has_gpu


def test_real_probe_never_raises() -> None:
    probe = probe_gpus()
    assert probe.reason


def test_visibility_follows_cuda_rules() -> None:
    nvml = FakeNvml([("A", 8, 8), ("B", 8, 8), ("C", 8, 8)])
    assert [d.index for d in probe_gpus(nvml, visible="2,0").devices] == [2, 0]
    assert [d.index for d in probe_gpus(nvml, visible="GPU-1").devices] == [1]
    assert [d.index for d in probe_gpus(nvml, visible="1,-1,2").devices] == [1]  # stops at -1
    assert not probe_gpus(nvml, visible="-1").has_gpu
