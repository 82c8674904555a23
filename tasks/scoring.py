"""Stacking and scoring one slot as a task."""

from __future__ import annotations

from prefect import task

from numerflow.runs.evaluation import evaluate
from numerflow.score.results import Evaluation
from tasks.inputs import SlotJob


@task(name="stack-and-score", task_run_name="stack-and-score-{job.slot.name}")
def stack_and_score(job: SlotJob) -> Evaluation:
    """The slot's stack of its fold models, scored out of fold and on validation."""
    run = job.run
    return evaluate(job.slot, run.plan.data, job.prepared, job.results, run.paths.slot_dir(job.slot.name))
