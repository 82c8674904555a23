"""A run's folder: where its plan, prepared data, models and slots live, created with the plan
and the effective parameters recorded before any training."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from numerflow.data.binned import BinsCache
from numerflow.io import write_json_atomic, write_yaml_atomic
from numerflow.runs.manifest import SLOTS_DIR, new_run_id
from numerflow.runs.plan import RunPlan, plan_record
from numerflow.train.foldcache import CACHE_DIR_NAME, FoldCache

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


def start_run(plan: RunPlan) -> RunPaths:
    """Create the run directory and record the plan and effective parameters before training."""
    decision = plan.decision
    if decision is None:
        raise ValueError("start_run: the plan's device is not decided yet (numerflow.runs.device)")
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
        "device": {
            "choice": decision.choice,
            "reason": decision.reason,
            "fallbacks": [s.name for s in decision.ladder[1:]],
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
