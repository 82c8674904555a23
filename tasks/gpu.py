"""GPU probing and the tier decision as tasks. NVML can be briefly busy, so a probe is retried."""

from __future__ import annotations

from prefect import get_run_logger, task

from numerflow.config.models import NumerflowConfig
from numerflow.gpu import GpuProbe, probe_gpus
from numerflow.tiers import (
    TierDecision,
    capability_for,
    decide,
    gpu_required,
    manual_decision,
)


@task(name="probe-gpu", retries=2, retry_delay_seconds=2)
def probe_gpu() -> GpuProbe:
    probe = probe_gpus()
    get_run_logger().info("GPU probe: %s", probe.describe())
    return probe


@task(name="choose-tier")
def choose_tier(config: NumerflowConfig, probe: GpuProbe) -> TierDecision:
    """Fails here, before any training, when a GPU is required but unusable."""
    logger = get_run_logger()
    if config.training.params_source == "manual":
        decision = manual_decision(config.effective_params(), probe)
    else:
        program = config.program_input_params
        capability = capability_for(program, probe)
        decision = decide(program, probe, capability, gpu_required(program))
    log = logger.warning if decision.tier == "cpu" and probe.has_gpu else logger.info
    log("tier %s: %s", decision.tier, decision.reason)
    return decision
