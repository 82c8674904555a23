"""Running one step of a run once per model slot: a failed task run fails only the slots it was
for, with its reason, and the others go on. The task run shows Failed in the UI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from prefect import Task

from numerflow.runs.outcome import StepError


class ForSlots(Protocol):
    @property
    def slot_names(self) -> list[str]: ...


J = TypeVar("J", bound=ForSlots)


def each_slot(step: Task[[J], Any], jobs: Sequence[J]) -> dict[str, Any]:
    """Each job's slots -> the step's result for it, or a StepError. A step for a group of slots
    returns one result per slot (a dict by slot name); its failure fails every slot of the group."""
    done: dict[str, Any] = {}
    for job in jobs:
        state = step(job, return_state=True)
        if not state.is_completed():
            error = state.result(raise_on_failure=False)
            failed = (
                StepError.of(error)
                if isinstance(error, BaseException)
                else StepError(reason=str(state.message))
            )
            done |= dict.fromkeys(job.slot_names, failed)
            continue
        result = state.result()
        done |= {name: result[name] if isinstance(result, dict) else result for name in job.slot_names}
    return done
