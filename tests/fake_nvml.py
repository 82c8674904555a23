"""Simulated NVML answers for GPU tests (no GPU or driver needed)."""

from __future__ import annotations

from types import SimpleNamespace

from numerflow.gpu.probe import GIB


class FakeNvml:
    """Simulated NVML: a list of (name, total GiB, free GiB) cards; `mig` maps a card index to
    its MIG slices as (total GiB, free GiB)."""

    NVML_DEVICE_MIG_ENABLE = 1

    def __init__(
        self,
        cards: list[tuple[str, float, float]],
        init_error: Exception | None = None,
        mig: dict[int, list[tuple[float, float]]] | None = None,
    ):
        self.cards, self.init_error, self.shutdowns = cards, init_error, 0
        self.mig = mig or {}

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

    def nvmlDeviceGetUUID(self, handle: int | tuple[int, int]) -> str:
        if isinstance(handle, tuple):
            return f"MIG-{handle[0]}-{handle[1]}"
        return f"GPU-{handle}"

    def nvmlDeviceGetMemoryInfo(self, handle: int | tuple[int, int]) -> SimpleNamespace:
        if isinstance(handle, tuple):
            total, free = self.mig[handle[0]][handle[1]]
        else:
            _, total, free = self.cards[handle]
        return SimpleNamespace(total=int(total * GIB), free=int(free * GIB))

    def nvmlDeviceGetMigMode(self, handle: int) -> tuple[int, int]:
        if handle not in self.mig:
            raise RuntimeError("Not Supported")
        return (1, 1)

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: int) -> int:
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: int, slot: int) -> tuple[int, int]:
        if slot >= len(self.mig[handle]):
            raise RuntimeError("Not Found")
        return (handle, slot)

    def nvmlDeviceGetPciInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(bus=0x10 + handle)  # card i sits on PCI bus 0x10 + i

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=7)

    def nvmlSystemGetDriverVersion(self) -> str:
        return "555.42"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 12040
