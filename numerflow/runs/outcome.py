"""What became of each model slot in a weekly run: trained, or failed at a named stage with its
reason. The flow builds one `RunOutcome` step by step, each step returning a new one, so no
bookkeeping is shared or mutated between steps; the summary, the submission and the run's final
state all read it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from numerflow.runs.final import FinalModels
from numerflow.score.results import Evaluation
from numerflow.train.fit import FoldResult

# In run order: the fold models, stacking and scoring, the final models, the manifest.
Stage = Literal["folds", "score", "final model", "manifest"]


class StepError(BaseModel):
    """Why a step failed for a slot (the exception's type and message)."""

    model_config = ConfigDict(frozen=True)

    reason: str

    @classmethod
    def of(cls, error: BaseException) -> StepError:
        return cls(reason=f"{type(error).__name__}: {error}")


class SlotOutcome(BaseModel):
    """One slot: its fold results, evaluation, final models and manifest as they are made,
    or the stage it failed at and why. `trained` once its manifest is written."""

    model_config = ConfigDict(frozen=True)

    slot: str
    status: Literal["training", "trained", "failed"] = "training"
    failed_at: Stage | None = None
    reason: str | None = None
    fold_results: list[FoldResult] = []
    evaluation: Evaluation | None = None
    final: FinalModels | None = None
    manifest: Path | None = None

    def failure(self) -> str:
        """The reason as the run's message names it: a final-model failure says so."""
        return f"final model: {self.reason}" if self.failed_at == "final model" else str(self.reason)

    def after(self, stage: Stage, done: Any) -> SlotOutcome:
        """This slot once `stage` gave `done`: its result, or a StepError that fails the slot."""
        if isinstance(done, StepError):
            return self.model_copy(update={"status": "failed", "failed_at": stage, "reason": done.reason})
        if stage == "score":
            return self.model_copy(update={"evaluation": done})
        if stage == "final model":
            return self.model_copy(update={"final": done})
        if stage == "manifest":
            return self.model_copy(update={"manifest": done, "status": "trained"})
        raise ValueError(f"stage {stage!r} records no result on a slot")


class RunOutcome(BaseModel):
    """Every slot of the run, in the plan's order."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    slots: list[SlotOutcome]

    @classmethod
    def after_folds(
        cls, run_id: str, fits_by_slot: dict[str, list[str]], results: dict[str, FoldResult | str]
    ) -> RunOutcome:
        """Each slot with its fold results; a slot any of whose fold models failed (the error is
        the fit's result) fails at `folds`, the others go on."""
        slots = []
        for name, keys in fits_by_slot.items():
            mine = [results[key] for key in keys]
            errors = [r for r in mine if isinstance(r, str)]
            slot = SlotOutcome(slot=name, fold_results=[r for r in mine if isinstance(r, FoldResult)])
            failed = StepError(reason=f"{len(errors)} fold model(s) failed: {errors[0]}") if errors else None
            slots.append(slot.after("folds", failed) if failed else slot)
        return cls(run_id=run_id, slots=slots)

    def going(self) -> list[SlotOutcome]:
        """Slots that have not failed."""
        return [s for s in self.slots if s.status != "failed"]

    def slot(self, name: str) -> SlotOutcome:
        return next(s for s in self.slots if s.slot == name)

    def after(self, stage: Stage, done: dict[str, Any]) -> RunOutcome:
        """The run once `stage` ran for the slots in `done` (slot -> result or StepError)."""
        slots = [s.after(stage, done[s.slot]) if s.slot in done else s for s in self.slots]
        return self.model_copy(update={"slots": slots})

    def failed(self) -> list[SlotOutcome]:
        return [s for s in self.slots if s.status == "failed"]

    def trained(self) -> list[SlotOutcome]:
        return [s for s in self.slots if s.status == "trained"]

    def failures(self) -> dict[str, str]:
        """Each failed slot's reason, by slot."""
        return {s.slot: s.failure() for s in self.failed()}

    def evaluations(self) -> dict[str, Evaluation]:
        """The trained slots' scores, by slot."""
        return {s.slot: s.evaluation for s in self.trained() if s.evaluation is not None}

    def failure_message(self, also: str | None = None) -> str | None:
        """The run's Failed message naming every failed slot (and `also`, another incident's
        message), or None when none failed."""
        if not self.failed():
            return None
        reasons = "; ".join(f"{name}: {reason}" for name, reason in self.failures().items())
        return f"run {self.run_id}: model slot(s) failed: {reasons}" + (f" (and {also})" if also else "")
