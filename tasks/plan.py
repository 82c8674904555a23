"""The run plan as a task (resolved once, device-free, logged), and published as an artifact by
the flow once its device is decided (tasks/gpu.py)."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from numerflow.config.models import NumerflowConfig
from numerflow.runs.plan import RunPlan, param_changes, resolve_plan


@task(name="resolve-run-plan")
def resolve_run_plan(
    config: NumerflowConfig,
    version: str,
    overrides: dict[str, Any],
    only: list[str] | None,
) -> RunPlan:
    plan = resolve_plan(config, version, overrides, only)
    logger = get_run_logger()
    for slot in plan.slots:
        logger.info(
            "slot %s: targets %s, %s, %d folds, stacking %s, submits as %s",
            slot.name,
            slot.targets,
            slot.feature_source,
            slot.folds.n_folds,
            slot.stacking,
            slot.submit_as or "nothing (not uploaded)",
        )
    return plan


def publish_run_plan(plan: RunPlan) -> None:
    """The plan, its device decided, as the `numerflow-run-plan` artifact. Called in the flow
    itself, not a task, so it belongs to the flow run with the run's other artifacts."""
    decision = plan.decision
    assert decision is not None, "publish the plan once its device is decided"
    create_table_artifact(
        [
            {
                "slot": slot.name,
                "submits as": slot.submit_as or "-",
                "targets": ", ".join(slot.targets),
                "features": slot.feature_source,
                "folds": f"{slot.folds.n_folds} (embargo {slot.folds.embargo_eras})",
                "stacking": slot.stacking,
                "device": f"{slot.params.device_type} (decision {decision.choice})",
                "params": _describe_changes(param_changes(slot.params, plan.device_policy.base)),
            }
            for slot in plan.slots
        ],
        key="numerflow-run-plan",
        description=(
            f"data {plan.data.version}, era stride {plan.data.era_stride} "
            f"(validation {plan.data.validation_era_stride}), row limit {plan.data.row_limit}, "
            f"BMC against {plan.data.benchmark_model}, seed {plan.seed}; "
            f"device {decision.choice}: {decision.reason}"
        ),
    )


def _describe_changes(changes: dict[str, Any]) -> str:
    """A slot's parameters that differ from the parameter file's, or 'as the file'."""
    return ", ".join(f"{k}={v}" for k, v in changes.items()) or "as the parameter file"
