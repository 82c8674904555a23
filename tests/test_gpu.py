from types import SimpleNamespace

from numerflow.gpu import GIB, device_for, probe_gpus


class FakeNvml:
    """Simulated NVML answers: a list of (name, total GiB, free GiB) cards."""

    def __init__(self, cards: list[tuple[str, float, float]], init_error: Exception | None = None):
        self.cards, self.init_error, self.shutdowns = cards, init_error, 0

    def nvmlInit(self) -> None:
        if self.init_error:
            raise self.init_error

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.cards)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return self.cards[handle][0].encode()

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return f"GPU-{handle}"

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        _, total, free = self.cards[handle]
        return SimpleNamespace(total=int(total * GIB), free=int(free * GIB))

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=7)

    def nvmlSystemGetDriverVersion(self) -> str:
        return "555.42"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 12040


def test_missing_library_means_cpu() -> None:
    probe = probe_gpus(FakeNvml([], init_error=OSError("NVML Shared Library Not Found")), visible=None)
    assert not probe.has_gpu and "Library Not Found" in probe.reason
    assert device_for("gpu", probe)[0] == "cpu"


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
    assert device_for("gpu", hidden) == ("gpu", f"device_type gpu on {hidden.describe()}")
    assert device_for("cpu", hidden)[0] == "cpu"


def test_real_probe_never_raises() -> None:
    probe = probe_gpus()
    assert probe.reason


def test_visibility_follows_cuda_rules() -> None:
    nvml = FakeNvml([("A", 8, 8), ("B", 8, 8), ("C", 8, 8)])
    assert [d.index for d in probe_gpus(nvml, visible="2,0").devices] == [2, 0]
    assert [d.index for d in probe_gpus(nvml, visible="GPU-1").devices] == [1]
    assert [d.index for d in probe_gpus(nvml, visible="1,-1,2").devices] == [1]  # stops at -1
    assert not probe_gpus(nvml, visible="-1").has_gpu
