"""The weekly run's final-model step (`training.final_model: all_labelled`): after the fold
models are validated, one model per target on every labelled era of train and validation,
which then predicts live in place of the folds' mean.

`check_final_data` runs before any fold trains: it fixes the rows from the era and target
columns alone, sizes them with the memory guard (which picks the loader, or stops the run with
the figures and the settings that shrink it) and sizes the device for this shape with the run's
recorded device policy (numerflow.runs.device).
`train_final_models` then bins the rows once (both files in one pass, through the bins cache)
and trains each recipe's targets once, however many slots share the recipe."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from numerflow.data.files import DataError, labelled_eras
from numerflow.data.memory import DataShape, MemoryBudgetError, MemoryPlan, plan_memory
from numerflow.gpu.decision import DeviceDecision, GpuRequiredError, decision_for
from numerflow.gpu.probe import GpuProbe
from numerflow.gpu.vram import TrainingShape
from numerflow.runs.device import slot_ladder
from numerflow.runs.plan import RunPlan, SlotPlan
from numerflow.train.final import FinalResult, fit_final_on_ladder
from numerflow.train.prepare import RowPart, bin_rows, data_shape
from numerflow.train.progress import ProgressReport

SOURCE_FILES = ("train.parquet", "validation.parquet")
OFF_SWITCH = "training.yaml final_model: none (live is then the fold models' mean)"


class FinalData(BaseModel):
    """One data group's final-model rows, checked before any training."""

    model_config = ConfigDict(frozen=True)

    data_key: str
    parts: list[RowPart]  # train, then validation: the eras of each
    part_rows: dict[str, int]  # rows from each file
    shape: DataShape
    memory: MemoryPlan  # the guard's figures when checked
    decision: DeviceDecision  # the device for this shape, by the run's policy


class FinalModels(BaseModel):
    """The final models of one recipe and how they were made (each slot's manifest records it)."""

    model_config = ConfigDict(frozen=True)

    models_dir: Path
    results: list[FinalResult]
    data: FinalData
    bins: dict[str, Any]  # the bins record and the memory plan they were built (or reused) under
    seconds: float  # the whole step: binning (or loading the cache) and training

    @property
    def models(self) -> dict[str, Path]:
        return {r.target: r.model_path for r in self.results}


def check_final_data(
    plan: RunPlan, slots: list[SlotPlan], probe: GpuProbe, available: tuple[int, str] | None = None
) -> FinalData:
    """Fix the final model's rows for slots that share bins, and check they fit this machine:
    RAM by the memory guard (stops with the figures and the settings to change), the device by
    the run's device policy for this shape (never a cut: the point is all the rows; the CPU instead)."""
    data = plan.data
    paths = [data.version_dir / name for name in SOURCE_FILES]
    mains = list(dict.fromkeys(slot.targets[0] for slot in slots))  # eras where the scored target is known
    eras = labelled_eras(paths, mains, data.era_stride, data.row_limit)
    parts = [RowPart(path=p, eras=e.tolist()) for p, e in zip(paths, eras, strict=True) if len(e)]
    if not parts:
        raise DataError(f"{data.version_dir}: no era of {', '.join(SOURCE_FILES)} has {mains[0]} known")
    selected = [part.rows() for part in parts]
    first = slots[0]
    shape = data_shape(selected, first.features, first.params.bin_construct_sample_cnt, train_fraction=0.0)
    try:
        memory = plan_memory(shape, data.loader, available)
    except MemoryBudgetError as exc:
        raise MemoryBudgetError(f"the final model on all labelled eras: {exc}; or {OFF_SWITCH}") from None
    try:
        decision = decision_for(
            plan.device_policy,
            probe,
            TrainingShape(rows=shape.rows, features=shape.features, era_stride=data.era_stride),
            can_reduce=False,
        )
    except GpuRequiredError as exc:
        raise GpuRequiredError(f"the final model on all labelled eras: {exc}; or {OFF_SWITCH}") from None
    return FinalData(
        data_key=first.data_key(),
        parts=parts,
        part_rows={rows.path.name: len(rows) for rows in selected},
        shape=shape,
        memory=memory,
        decision=decision,
    )


def train_final_models(
    plan: RunPlan,
    final: FinalData,
    slots: list[SlotPlan],
    prepared_dir: Path,
    models_dir: Callable[[str], Path],
    recipe_of: Callable[[SlotPlan], str],
    progress_for: Callable[[str], ProgressReport | None] | None = None,
    on_binning: ProgressReport | None = None,
) -> dict[str, FinalModels]:
    """Bin the final rows once and train every recipe's targets once; the models of each slot.

    `models_dir(recipe)` is where a recipe's models go (`final/<target>.txt` under it);
    `progress_for(label)` gives each model's tree report, `on_binning` follows the binning."""
    started = time.perf_counter()
    data = plan.data
    first = slots[0]
    prepared = bin_rows(
        final.parts,
        first.features,
        list(dict.fromkeys(t for slot in slots for t in slot.targets)),
        first.params,
        prepared_dir,
        bins_dir=data.bins_dir,
        loader=data.loader,
        train_fraction=0.0,  # the whole Dataset, no subset copy (numerflow.train.final)
        on_progress=on_binning,
    )
    bins = {
        "record": prepared.bins.record.model_dump(),
        "built": prepared.bins.built,
        "memory": prepared.bins.plan.model_dump(),
    }
    by_recipe: dict[str, list[FinalResult]] = {}
    for slot in slots:
        recipe = recipe_of(slot)
        if recipe in by_recipe:
            continue
        ladder = slot_ladder(final.decision, plan.device_policy.base, slot.recipe_params)
        by_recipe[recipe] = [
            fit_final_on_ladder(
                prepared,
                target,
                ladder,
                plan.seed,
                models_dir(recipe),
                progress_for(f"final {target}") if progress_for else None,
            )
            for target in slot.targets
        ]
    seconds = round(time.perf_counter() - started, 3)
    return {
        slot.name: FinalModels(
            models_dir=models_dir(recipe_of(slot)),
            results=by_recipe[recipe_of(slot)],
            data=final,
            bins=bins,
            seconds=seconds,
        )
        for slot in slots
    }


def final_record(final: FinalModels, run_dir: Path) -> dict[str, Any]:
    """What the manifest says about the final step: models, rows, eras, seconds, device."""
    decision = final.data.decision
    return {
        "models": {t: str(p.relative_to(run_dir)) for t, p in final.models.items()},
        "rows": final.data.shape.rows,
        "rows_by_file": final.data.part_rows,
        "eras_by_file": {
            part.path.name: [part.eras[0], part.eras[-1], len(part.eras)]
            for part in final.data.parts
            if part.eras
        },
        "features": final.data.shape.features,
        "seconds": final.seconds,
        "device": {"choice": decision.choice, "reason": decision.reason},
        "per_target": [r.model_dump(mode="json", exclude={"model_path"}) for r in final.results],
        "bins": final.bins,
        "memory_checked": final.data.memory.model_dump(),
    }
