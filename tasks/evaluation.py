"""Stacking and scoring as a task, and the run's metrics published as Prefect artifacts."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from numerflow.config.models import NumerflowConfig
from numerflow.runs.steps import RunPaths
from numerflow.score.evaluate import Evaluation, evaluate
from numerflow.score.report import markdown_summary, summary_rows
from numerflow.submit.report import submission_table
from numerflow.submit.steps import SubmissionOutcome
from numerflow.train.fit import FoldResult
from numerflow.train.prepare import PreparedData


@task(name="stack-and-score")
def stack_and_score(
    config: NumerflowConfig, prepared: PreparedData, results: list[FoldResult], paths: RunPaths
) -> Evaluation:
    return evaluate(config, prepared, results, paths.run_dir)


def publish_submissions(outcome: SubmissionOutcome) -> None:
    """The uploads table on the current flow run's page (called in a flow, not a task)."""
    rows, description = submission_table(outcome)
    create_table_artifact(rows, key="numerflow-submissions", description=description)


def publish_metrics(
    paths: RunPaths,
    data_version: str,
    evaluation: Evaluation,
    submission: SubmissionOutcome,
    overrides: dict[str, Any],
    device: dict[str, Any],
    seconds: float,
) -> None:
    """Artifacts with stable keys, so every run adds a version to the same collections. Called in
    the flow itself, not a task, so they belong to the flow run (the weekly run's page shows the
    submissions too)."""
    publish_submissions(submission)
    create_markdown_artifact(
        markdown_summary(
            paths.run_id, data_version, evaluation, submission, overrides, device, paths.run_dir, seconds
        ),
        key="numerflow-run-summary",
        description=f"weekly run {paths.run_id}",
    )
    create_table_artifact(
        summary_rows(evaluation), key="numerflow-metrics", description="per-era CORR summary"
    )
    create_table_artifact(evaluation.per_fold, key="numerflow-fold-metrics", description="CORR per fold")
    create_table_artifact(
        evaluation.per_era["validation"],
        key="numerflow-validation-era-corr",
        description="CORR per validation era",
    )
    create_table_artifact(
        evaluation.per_era["oof"],
        key="numerflow-oof-era-corr",
        description="out-of-fold CORR per era",
    )
