"""GPU probing and the GPU decision as tasks. NVML can be briefly busy, so a probe is retried."""

from __future__ import annotations

from prefect import get_run_logger, task

from numerflow.config.models import NumerflowConfig
from numerflow.gpu.probe import GpuProbe, probe_gpus
from numerflow.gpu.shape import run_shape
from numerflow.gpu.tiers import DevicePolicy, TierDecision, decision_for


@task(name="probe-gpu", retries=2, retry_delay_seconds=2)
def probe_gpu() -> GpuProbe:
    probe = probe_gpus()
    get_run_logger().info("GPU probe: %s", probe.describe())
    return probe


@task(name="choose-tier")
def choose_tier(
    config: NumerflowConfig, probe: GpuProbe, version: str, only: list[str] | None = None
) -> TierDecision:
    """CPU or GPU, which device and how much data, sized from the run's training shape on data
    `version` (read from the era column, before any feature is loaded) for the slots in `only`
    (default: all). Fails here, before any training, when a GPU is required but unusable."""
    logger = get_run_logger()
    decision = decision_for(DevicePolicy.of(config), probe, run_shape(config, version, only))
    log = logger.warning if decision.tier == "cpu" and probe.has_gpu else logger.info
    log("tier %s: %s", decision.tier, decision.reason)
    return decision
