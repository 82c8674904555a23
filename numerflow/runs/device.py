"""The device decided once per run: the device-free plan gives its training shape, the shape
sizes one decision (numerflow.gpu.decision), and the decision is applied to the plan: the data
limits it imposes (a larger era_stride, fewer features) and each slot's fallback ladder.

The plan records the policy the decision came from (`RunPlan.device_policy`). The final model
(numerflow.runs.final) and each Dask worker (`worker_ladder`) size their own data with that
same policy, never with the configuration again."""

from __future__ import annotations

from typing import Any

from numerflow.config import ConfigError
from numerflow.config.models import LightGBMParams, NumerflowConfig
from numerflow.data.files import DataError, training_eras
from numerflow.data.rows import SelectedRows
from numerflow.gpu.decision import DeviceDecision, DevicePolicy, decision_for
from numerflow.gpu.probe import GpuProbe
from numerflow.gpu.shape import fold_shape, shape_for, training_shape_of
from numerflow.gpu.vram import TrainingShape
from numerflow.lgbpaths import LightGBMPathError
from numerflow.numerai.training_data import resolve_version
from numerflow.runs.fits import FitSpec
from numerflow.runs.plan import RunPlan, SlotPlan, describe_features, param_changes, resolve_plan
from numerflow.train.device import FallbackStep
from numerflow.train.prepare import PreparedData


def training_shape(plan: RunPlan) -> TrainingShape:
    """The most demanding fold of the device-free plan, read from the era column before any
    feature is loaded (so a cut can still be applied): its rows (after era_stride and
    row_limit) with the widest slot's features and the largest share of rows any slot's folds
    train on."""
    data = plan.data
    path = data.version_dir / "train.parquet"
    rows = len(SelectedRows(path, training_eras(path, data.era_stride, data.row_limit).tolist()))
    features = max(len(slot.features) for slot in plan.slots)
    n_folds = max(slot.folds.n_folds for slot in plan.slots)
    return training_shape_of(rows, features, data.era_stride, n_folds)


def decide_device(plan: RunPlan, probe: GpuProbe) -> DeviceDecision:
    """The run's one device decision, from the plan's recorded policy and its training shape.
    Raises GpuRequiredError before any training when a GPU is required but unusable."""
    return decision_for(plan.device_policy, probe, training_shape(plan))


def apply_decision(plan: RunPlan, decision: DeviceDecision) -> RunPlan:
    """The plan with `decision` applied: its era_stride cut (the GPU may need fewer rows), each
    slot's features cut to the decision's max_features, and each slot's fallback ladder."""
    era_stride = max(plan.data.era_stride, decision.era_stride or 1)
    slots = [_applied(slot, decision, plan.device_policy.base) for slot in plan.slots]
    return plan.model_copy(
        update={
            "data": plan.data.model_copy(update={"era_stride": era_stride}),
            "slots": slots,
            "decision": decision,
        }
    )


def _applied(slot: SlotPlan, decision: DeviceDecision, base: LightGBMParams) -> SlotPlan:
    update: dict[str, Any] = {"ladder": slot_ladder(decision, base, slot.recipe_params)}
    cut = decision.max_features
    if cut is not None:
        own = slot.feature_config.max_features
        tighter = cut if own is None else min(own, cut)
        config = slot.feature_config.model_copy(update={"max_features": tighter})
        features = slot.features[:cut]
        update |= {
            "features": features,
            "feature_source": describe_features(config, len(features)),
            "feature_config": config,
        }
        if slot.neutraliser_set is None:  # measured against its own features: the cut ones
            update["neutralisers"] = features
    return slot.model_copy(update=update)


def slot_ladder(decision: DeviceDecision, base: LightGBMParams, params: LightGBMParams) -> list[FallbackStep]:
    """The decision's steps applied to a slot: each step's changes to the base parameters
    (device, GPU id, GPU-only settings) on top of the slot's own parameters."""
    return [
        FallbackStep(name=step.name, params=params.model_copy(update=param_changes(step.params, base)))
        for step in decision.ladder
    ]


def worker_ladder(
    policy: DevicePolicy, probe: GpuProbe, prepared: PreparedData, fit: FitSpec
) -> tuple[list[FallbackStep], DeviceDecision]:
    """A Dask worker's ladder for `fit`, decided with the run's policy for the worker's own GPU.
    The bins are built by then: the GPU takes the fold as it is, or the CPU does (never a cut)."""
    decision = decision_for(policy, probe, fold_shape(prepared, fit.fold), can_reduce=False)
    return slot_ladder(decision, policy.base, fit.recipe_params), decision


def configured_shape(
    config: NumerflowConfig, assume: tuple[int, int] | None = None
) -> tuple[TrainingShape | None, str]:
    """For `numerflow gpu`: the training shape of the configured data (the newest local version
    for `latest`), or `assume` (rows, features), and where it came from."""
    if assume is not None:
        return shape_for(config, *assume), "assumed with --assume-shape"
    try:
        version = resolve_version(config.training.data, None)
        shape = training_shape(resolve_plan(config, version))
    except (DataError, ConfigError, LightGBMPathError, OSError) as exc:
        return None, f"unknown ({exc}); pass --assume-shape ROWSxFEATURES"
    return shape, f"the configured training data ({version})"
