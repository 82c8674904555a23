"""benchmarks/gpu.py's measuring loop, with the GPU learner simulated by the CPU (no GPU here)."""

import pytest

import benchmarks.gpu as bench
from numerflow.gpu.capability import Capability


def test_cpu_only_rows_and_a_simulated_gpu_learner(monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    assert bench.measure_size(3_000, 12, 5, None, {}, lines.append) == {}
    [cpu_row] = lines
    assert cpu_row.split()[:5] == ["3,000", "x", "12", "3.60e+04", "cpu"]

    real = bench.train_timed
    devices = []

    def on_the_cpu(dataset, params, trees):
        devices.append((params["device_type"], params.get("gpu_platform_id"), params.get("gpu_device_id")))
        return real(dataset, {**params, "device_type": "cpu"}, trees)

    monkeypatch.setattr(bench, "train_timed", on_the_cpu)
    checked = Capability(ok=True, reason="simulated", learner="gpu", platform_id=1, device_id=0)
    lines.clear()
    [(learner, measurement)] = bench.measure_size(3_000, 12, 5, None, {"gpu": checked}, lines.append).items()
    assert devices == [("cpu", None, None), ("gpu", 1, 0)]  # the device the capability check chose
    assert learner == "gpu" and measurement.rows == 3_000 and measurement.peak_vram_bytes is None
    assert lines[1].split()[-1] == "1.0000"  # same trees: the predictions agree
    assert "MiB" in lines[1]  # the VRAM estimate is shown next to the (unsampled) peak
