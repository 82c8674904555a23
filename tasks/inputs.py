"""The typed inputs of the weekly run's tasks: each task takes one of these, so a call names
what it works on instead of a row of positional arguments. Task run names are formatted from
their fields (`stack-and-score-{job.slot.name}`); the server records a task run's inputs only as
references (`TaskRun.task_inputs`: results, parameters, constants), never their values. The fold
subflow's input is a flow parameter, which the server stores, as its arguments were before."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from numerflow.config.models import ScaleOutConfig
from numerflow.gpu.decision import DevicePolicy
from numerflow.gpu.probe import GpuProbe
from numerflow.runs.final import FinalData, FinalModels
from numerflow.runs.fits import FitSpec, data_groups
from numerflow.runs.folders import RunPaths
from numerflow.runs.manifest import DeviceRecord
from numerflow.runs.outcome import RunOutcome
from numerflow.runs.plan import RunPlan, SlotPlan, SubmitPlan, submit_plan_after_training
from numerflow.score.results import Evaluation
from numerflow.train.fit import FoldResult
from numerflow.train.prepare import PreparedData


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class WeeklyRun(Frozen):
    """The run's resolved plan, its folder and what the GPU probe saw."""

    plan: RunPlan
    paths: RunPaths
    probe: GpuProbe

    def groups(self, only: list[str] | None = None) -> list[DataGroup]:
        """The slots (of `only`, default all) by the bins they share."""
        return [
            DataGroup(run=self, key=key, slots=kept)
            for key, slots in data_groups(self.plan).items()
            if (kept := [s for s in slots if only is None or s.name in only])
        ]

    def submit_plan(self, outcome: RunOutcome) -> SubmitPlan | None:
        """The submission of the slots that trained, each from its folder in this run; None
        when none trained."""
        trained = {s.slot: self.paths.slot_dir(s.slot) for s in outcome.trained()}
        return submit_plan_after_training(self.plan, trained) if trained else None


class DataGroup(Frozen):
    """Slots that share one set of bins (same features and dataset parameters)."""

    run: WeeklyRun
    key: str
    slots: list[SlotPlan]

    @property
    def slot_names(self) -> list[str]:
        return [s.name for s in self.slots]


class FitPlan(Frozen):
    """Every fold x target to train, once however many slots share it, and each slot's fit keys."""

    fits: list[FitSpec]
    by_slot: dict[str, list[str]]


class FoldJobs(Frozen):
    """What the fold subflow trains, and where: here, or on the Dask cluster of `scale_out`."""

    fits: list[FitSpec]
    prepared: dict[str, PreparedData]
    scale_out: ScaleOutConfig
    seed: int
    cache_dir: Path
    device_policy: DevicePolicy  # a Dask worker decides its own device with it

    def job(self, fit: FitSpec) -> FoldJob:
        """The fit as a task's input; on a Dask cluster with the policy its worker decides by."""
        policy = self.device_policy if self.scale_out.dask_address else None
        return FoldJob(
            prepared=self.prepared[fit.data_key],
            fit=fit,
            seed=self.seed,
            cache_dir=self.cache_dir,
            worker_policy=policy,
        )


class FoldJob(Frozen):
    """One fold x target to train on its group's bins; with a `worker_policy` the machine that
    trains it (a Dask worker) decides its own device."""

    prepared: PreparedData
    fit: FitSpec
    seed: int
    cache_dir: Path | None = None
    worker_policy: DevicePolicy | None = None


class RunData(Frozen):
    """The run once its data are prepared: each group's bins and final-model check."""

    run: WeeklyRun
    prepared: dict[str, PreparedData]
    finals: dict[str, FinalData]  # by data group; empty with final_model: none

    def fold_jobs(self, fits: FitPlan) -> FoldJobs:
        plan = self.run.plan
        return FoldJobs(
            fits=fits.fits,
            prepared=self.prepared,
            scale_out=plan.scale_out,
            seed=plan.seed,
            cache_dir=self.run.paths.fold_cache_dir,
            device_policy=plan.device_policy,
        )

    def slot_jobs(self, outcome: RunOutcome) -> list[SlotJob]:
        """Each slot still going, with its data and fold results."""
        return [
            SlotJob(
                run=self.run, slot=slot, prepared=self.prepared[slot.data_key()], results=done.fold_results
            )
            for done in outcome.going()
            if (slot := self.run.plan.slot(done.slot))
        ]

    def final_jobs(self, outcome: RunOutcome) -> list[FinalJob]:
        """Each data group's final models, for its slots still going."""
        going = [s.slot for s in outcome.going()]
        return [
            FinalJob(group=g, final=self.finals[g.key])
            for g in self.run.groups(going)
            if g.key in self.finals
        ]

    def manifest_jobs(self, outcome: RunOutcome, device: DeviceRecord, created_at: str) -> list[ManifestJob]:
        """Each slot still going, scored (and its final models trained): its manifest."""
        return [
            ManifestJob(
                job=job, evaluation=done.evaluation, final=done.final, device=device, created_at=created_at
            )
            for job in self.slot_jobs(outcome)
            if (done := outcome.slot(job.slot.name)).evaluation is not None
        ]


class DeviceInput(Frozen):
    run: WeeklyRun
    results: dict[str, FoldResult | str]


class SlotJob(Frozen):
    """One slot after its folds: what stacking, scoring and its manifest read."""

    run: WeeklyRun
    slot: SlotPlan
    prepared: PreparedData
    results: list[FoldResult]

    @property
    def slot_names(self) -> list[str]:
        return [self.slot.name]


class FinalJob(Frozen):
    """One data group's final models, for its slots that scored."""

    group: DataGroup
    final: FinalData

    @property
    def slot_names(self) -> list[str]:
        return self.group.slot_names


class ManifestJob(Frozen):
    """A scored slot's manifest: its job, scores, final models and the run's device record."""

    job: SlotJob
    evaluation: Evaluation
    final: FinalModels | None
    device: DeviceRecord
    created_at: str

    @property
    def slot_names(self) -> list[str]:
        return self.job.slot_names
