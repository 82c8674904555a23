"""The weekly run's bookkeeping steps as plain functions: the run folder, data preparation once
per feature set, the deduplicated fold x target fits, the device record and each slot's manifest.
Prefect tasks wrap these; tests call them directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from numerflow.config.models import LightGBMParams
from numerflow.data.binned import BinsCache
from numerflow.data.files import training_eras
from numerflow.gpu.probe import GpuProbe
from numerflow.gpu.tiers import TierStep
from numerflow.io import atomic_path, write_json_atomic, write_yaml_atomic
from numerflow.progress import ProgressReport
from numerflow.runs.final import FinalModels, final_record
from numerflow.runs.manifest import (
    CHART_FILE,
    SLOTS_DIR,
    Manifest,
    code_version,
    mark_latest,
    new_run_id,
    utc_now,
    write_manifest,
)
from numerflow.runs.plan import RunPlan, SlotPlan, plan_record, short_digest
from numerflow.score.evaluate import Evaluation, model_paths
from numerflow.train.fit import FoldResult
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


def device_record(plan: RunPlan, probe: GpuProbe, results: list[FoldResult]) -> dict[str, Any]:
    """What the run trained on: the tier, why, what NVML saw, and every fold's step down."""
    decision = plan.decision
    return {
        "tier": decision.tier,
        "reason": decision.reason,
        "device_type": decision.params.device_type,
        "capability": decision.capability.model_dump() if decision.capability else None,
        "probe": probe.model_dump(mode="json"),
        "downgrades": [
            {"target": r.target, "fold": r.fold, **step} for r in results for step in r.downgrades
        ],
    }


def write_slot_manifest(
    plan: RunPlan,
    slot: SlotPlan,
    device: dict[str, Any],
    paths: RunPaths,
    prepared: PreparedData,
    results: list[FoldResult],
    evaluation: Evaluation,
    created_at: str,
    final: FinalModels | None = None,
) -> Path:
    """Write the slot's validation chart and manifest.json once it is scored (and its final
    models trained, when the run trains them), then make it the slot's latest run."""
    # Imported here: matplotlib takes about a second to import, which every process that
    # imports this module (the per-round flow, Dask workers) would pay without drawing.
    from numerflow.score.charts import validation_chart

    data = plan.data
    slot_dir = paths.slot_dir(slot.name)
    with atomic_path(slot_dir / CHART_FILE) as tmp:
        tmp.write_bytes(validation_chart(evaluation, slot.name, paths.run_id))
    manifest = Manifest(
        run_id=paths.run_id,
        slot=slot.name,
        submit_as=slot.submit_as,
        created_at=created_at,
        finished_at=utc_now(),
        code_version=code_version(),
        data={
            "version": data.version,
            "dir": str(data.version_dir),
            "era_stride": data.era_stride,
            "row_limit": data.row_limit,
            "training_rows": prepared.rows,
            "bins": prepared.bins.model_dump(mode="json"),
            "training_eras": [prepared.eras[0], prepared.eras[-1], len(prepared.eras)],
            "validation_eras": evaluation.validation_eras,
        },
        features=slot.features,
        targets=slot.targets,
        params=slot.params.model_dump(mode="json") | {"seed": plan.seed},
        device=device,
        folds=[fold.model_dump(mode="json") for fold in slot_folds(slot, prepared)],
        fold_results=[r.model_dump(mode="json") for r in results],
        models={
            t: [str(p.relative_to(paths.run_dir)) for p in ps]
            for t, ps in model_paths(results, slot.targets).items()
        },
        stacker=evaluation.stacker.model_dump(mode="json"),
        metrics={
            "summary": evaluation.summary,
            "per_fold": evaluation.per_fold,
            "validation": {
                name: metric.model_dump(exclude={"per_era"})
                for name, metric in evaluation.validation_metrics.items()
            },
        },
        chart=(slot_dir / CHART_FILE).relative_to(paths.run_dir).as_posix(),
        submission_models="final" if final is not None else "folds",
        final_model=final_record(final, paths.run_dir) if final is not None else None,
    )
    path = write_manifest(slot_dir, manifest)
    mark_latest(plan.work_dir, paths.run_dir, slot.name)
    return path
