"""GPU probing as a task: NVML can be briefly busy, so a probe is retried before giving up."""

from __future__ import annotations

from prefect import get_run_logger, task

from numerflow.gpu import GpuProbe, probe_gpus


@task(name="probe-gpu", retries=2, retry_delay_seconds=2)
def probe_gpu() -> GpuProbe:
    probe = probe_gpus()
    get_run_logger().info("GPU probe: %s", probe.describe())
    return probe
