"""The weekly run's bookkeeping steps as plain functions: the run folder, data preparation once
per feature set and the deduplicated fold x target fits (the device record and each slot's
manifest: `numerflow.runs.record`).
Prefect tasks wrap these; tests call them directly."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from numerflow.config.models import LightGBMParams
from numerflow.data.binned import BinsCache
from numerflow.data.files import training_eras
from numerflow.gpu.tiers import TierStep
from numerflow.io import write_json_atomic, write_yaml_atomic
from numerflow.progress import ProgressReport
from numerflow.runs.manifest import (
    SLOTS_DIR,
    new_run_id,
)
from numerflow.runs.plan import RunPlan, SlotPlan, plan_record, short_digest
from numerflow.train.foldcache import CACHE_DIR_NAME, FoldCache
from numerflow.train.folds import Fold, make_folds
from numerflow.train.prepare import PreparedData, bin_training_rows

PLAN_FILE = "plan.json"


class RunPaths(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    run_dir: Path

    @property
    def fold_cache_dir(self) -> Path:
        return self.run_dir.parent / CACHE_DIR_NAME

    def prepared_dir(self, data_key: str) -> Path:
        return self.run_dir / "prepared" / data_key

    def models_dir(self, recipe: str) -> Path:
        return self.run_dir / "models" / recipe

    def slot_dir(self, slot: str) -> Path:
        return self.run_dir / SLOTS_DIR / slot


class FitSpec(BaseModel):
    """One fold x target to train; slots with the same recipe share it."""

    model_config = ConfigDict(frozen=True)

    key: str  # recipe, target and fold: equal keys are the same model
    data_key: str
    fold: Fold
    target: str
    recipe_params: LightGBMParams  # before the device decision: a Dask worker decides its own
    ladder: list[TierStep]
    models_dir: Path


def start_run(plan: RunPlan) -> RunPaths:
    """Create the run directory and record the plan and effective parameters before training."""
    run_id = new_run_id()
    run_dir = plan.work_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    paths = RunPaths(run_id=run_id, run_dir=run_dir)
    FoldCache(paths.fold_cache_dir).prune()
    BinsCache(plan.data.bins_dir).prune()
    write_json_atomic(run_dir / PLAN_FILE, {"run_id": run_id, **plan_record(plan)})
    effective = {
        "run_id": run_id,
        "params_source": plan.params_source,
        "tier": {
            "name": plan.decision.tier,
            "reason": plan.decision.reason,
            "fallbacks": [s.tier for s in plan.decision.ladder[1:]],
        },
        "data_version": plan.data.version,
        "row_limit": plan.data.row_limit,
        "seed": plan.seed,
        "slots": {
            slot.name: {
                "submit_as": slot.submit_as,
                "params": slot.params.model_dump(mode="json"),
                "targets": slot.targets,
                "features": slot.feature_source,
                "folds": slot.folds.model_dump(mode="json"),
                "stacking": slot.stacking,
            }
            for slot in plan.slots
        },
    }
    output = plan.output
    write_yaml_atomic(run_dir / output.run_file, effective)
    if output.latest_file is not None:
        latest = output.latest_file
        write_yaml_atomic(latest if latest.is_absolute() else plan.work_dir / latest, effective)
    return paths


def data_groups(plan: RunPlan) -> dict[str, list[SlotPlan]]:
    """Slots by the bins they can share (same features and dataset parameters)."""
    groups: dict[str, list[SlotPlan]] = {}
    for slot in plan.slots:
        groups.setdefault(slot.data_key(), []).append(slot)
    return groups


def prepare_data(
    plan: RunPlan, slots: list[SlotPlan], paths: RunPaths, on_progress: ProgressReport | None = None
) -> PreparedData:
    """Fix the training rows and bin them once for every fold, target and slot of the group;
    `on_progress(rows binned, rows)` follows the binning."""
    data = plan.data
    train_path = data.version_dir / "train.parquet"
    n_folds = max(slot.folds.n_folds for slot in slots)
    return bin_training_rows(
        train_path,
        slots[0].features,
        list(dict.fromkeys(t for slot in slots for t in slot.targets)),
        slots[0].params,
        paths.prepared_dir(slots[0].data_key()),
        bins_dir=data.bins_dir,
        eras=training_eras(train_path, data.era_stride, data.row_limit).tolist(),
        loader=data.loader,
        train_fraction=(n_folds - 1) / n_folds,
        on_progress=on_progress,
    )


def slot_folds(slot: SlotPlan, prepared: PreparedData) -> list[Fold]:
    return make_folds(prepared.eras, slot.folds.n_folds, slot.folds.embargo_eras)


def recipe_key(plan: RunPlan, slot: SlotPlan) -> str:
    """Slots with equal recipes (data, folds, parameters, seed) train the same fold models."""
    return short_digest(
        {
            "data": slot.data_key(),
            "folds": slot.folds.model_dump(),
            "params": slot.params.model_dump(mode="json"),
            "seed": plan.seed,
        }
    )


def plan_fits(
    plan: RunPlan, prepared: dict[str, PreparedData], paths: RunPaths
) -> tuple[list[FitSpec], dict[str, list[str]]]:
    """Every fold x target to train, each once however many slots need it, and the fit keys
    of each slot."""
    fits: dict[str, FitSpec] = {}
    by_slot: dict[str, list[str]] = {}
    for slot in plan.slots:
        recipe = recipe_key(plan, slot)
        data_key = slot.data_key()
        keys = []
        for target in slot.targets:
            for fold in slot_folds(slot, prepared[data_key]):
                key = f"{recipe}/{target}/{fold.index}"
                fits.setdefault(
                    key,
                    FitSpec(
                        key=key,
                        data_key=data_key,
                        fold=fold,
                        target=target,
                        recipe_params=slot.recipe_params,
                        ladder=slot.ladder,
                        models_dir=paths.models_dir(recipe),
                    ),
                )
                keys.append(key)
        by_slot[slot.name] = keys
    return list(fits.values()), by_slot
