"""What a weekly run records for each slot: the device it trained on, and the slot's manifest
and validation chart once it is scored."""

from __future__ import annotations

from pathlib import Path

from numerflow.gpu.probe import GpuProbe
from numerflow.io import atomic_path
from numerflow.runs.evaluation import model_paths
from numerflow.runs.final import FinalModels, final_record
from numerflow.runs.fits import slot_folds
from numerflow.runs.folders import RunPaths
from numerflow.runs.manifest import (
    CHART_FILE,
    DataRecord,
    DeviceRecord,
    Downgrade,
    Manifest,
    SlotMetrics,
    code_version,
    mark_latest,
    utc_now,
    write_manifest,
)
from numerflow.runs.plan import RunPlan, SlotPlan
from numerflow.score.results import Evaluation
from numerflow.train.fit import FoldResult
from numerflow.train.prepare import PreparedData


def device_record(plan: RunPlan, probe: GpuProbe, results: list[FoldResult]) -> DeviceRecord:
    """What the run trained on: the device decision, why, what NVML saw, and every fold's step down."""
    decision = plan.decision
    return DeviceRecord(
        choice=decision.choice,
        reason=decision.reason,
        device_type=decision.params.device_type,
        capability=decision.capability.model_dump() if decision.capability else None,
        probe=probe.model_dump(mode="json"),
        downgrades=[
            Downgrade.model_validate({"target": r.target, "fold": r.fold, **step})
            for r in results
            for step in r.downgrades
        ],
    )


def write_slot_manifest(
    plan: RunPlan,
    slot: SlotPlan,
    device: DeviceRecord,
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
        data=DataRecord(
            version=data.version,
            dir=str(data.version_dir),
            era_stride=data.era_stride,
            row_limit=data.row_limit,
            training_rows=prepared.rows,
            bins=prepared.bins.model_dump(mode="json"),
            training_eras=[prepared.eras[0], prepared.eras[-1], len(prepared.eras)],
            validation_eras=evaluation.validation_eras,
        ),
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
        metrics=SlotMetrics.of(evaluation),
        chart=(slot_dir / CHART_FILE).relative_to(paths.run_dir).as_posix(),
        submission_models="final" if final is not None else "folds",
        final_model=final_record(final, paths.run_dir) if final is not None else None,
    )
    path = write_manifest(slot_dir, manifest)
    mark_latest(plan.work_dir, paths.run_dir, slot.name)
    return path
