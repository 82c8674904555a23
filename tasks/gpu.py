"""GPU probing and the run's one device decision as tasks. NVML can be briefly busy, so a probe
is retried."""

from __future__ import annotations

from prefect import get_run_logger, task

from numerflow.gpu.probe import GpuProbe, probe_gpus
from numerflow.runs.device import apply_decision, decide_device
from numerflow.runs.plan import RunPlan


@task(name="probe-gpu", retries=2, retry_delay_seconds=2)
def probe_gpu() -> GpuProbe:
    probe = probe_gpus()
    get_run_logger().info("GPU probe: %s", probe.describe())
    return probe


@task(name="decide-device")
def decide_device_task(plan: RunPlan, probe: GpuProbe) -> RunPlan:
    """CPU or GPU, which device and how much data, sized from the device-free plan's training
    shape (read from the era column, before any feature is loaded), and applied to the plan.
    Fails here, before any training, when a GPU is required but unusable."""
    logger = get_run_logger()
    decision = decide_device(plan, probe)
    log = logger.warning if decision.choice == "cpu" and probe.has_gpu else logger.info
    log("device %s: %s", decision.choice, decision.reason)
    return apply_decision(plan, decision)
