"""The weekly run's fits, planned once: the training data prepared once per feature set, and
every fold x target to train, once however many slots share it."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from numerflow.config.models import LightGBMParams
from numerflow.data.files import training_eras
from numerflow.progress import ProgressReport
from numerflow.runs.folders import RunPaths
from numerflow.runs.plan import RunPlan, SlotPlan, short_digest
from numerflow.train.device import FallbackStep
from numerflow.train.folds import Fold, make_folds
from numerflow.train.prepare import PreparedData, bin_training_rows


class FitSpec(BaseModel):
    """One fold x target to train; slots with the same recipe share it."""

    model_config = ConfigDict(frozen=True)

    key: str  # recipe, target and fold: equal keys are the same model
    data_key: str
    fold: Fold
    target: str
    recipe_params: LightGBMParams  # before the device decision: a Dask worker decides its own
    ladder: list[FallbackStep]
    models_dir: Path


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
