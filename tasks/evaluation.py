"""The run's metrics and submissions published as Prefect artifacts."""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from numerflow.live.report import summary_section
from numerflow.report.history import run_history_markdown
from numerflow.report.summary import markdown_summary, slot_rows, summary_rows
from numerflow.runs.folders import RunPaths
from numerflow.runs.manifest import CHART_FILE, DeviceRecord
from numerflow.score.results import Evaluation
from numerflow.submit.outcome import SubmissionOutcome
from numerflow.submit.report import submission_table


def publish_submissions(outcome: SubmissionOutcome) -> None:
    """The uploads table on the current flow run's page (called in a flow, not a task)."""
    rows, description = submission_table(outcome)
    create_table_artifact(rows, key="numerflow-submissions", description=description)


def publish_metrics(
    paths: RunPaths,
    data_version: str,
    evaluations: dict[str, Evaluation],
    failed: dict[str, str],
    submission: SubmissionOutcome | None,
    overrides: dict[str, Any],
    device: DeviceRecord,
    seconds: float,
    history_runs: int,
) -> None:
    """Artifacts with stable keys, so every run adds a version to the same collections. Called in
    the flow itself, not a task, so they belong to the flow run (the weekly run's page shows the
    submissions too)."""
    if submission is not None:
        publish_submissions(submission)
    create_markdown_artifact(
        markdown_summary(
            paths.run_id,
            data_version,
            evaluations,
            failed,
            submission,
            overrides,
            device,
            paths.run_dir,
            seconds,
            charts={slot: (paths.slot_dir(slot) / CHART_FILE).read_bytes() for slot in evaluations},
            live=summary_section(paths.run_dir.parent, list(evaluations)),
        ),
        key="numerflow-run-summary",
        description=f"lead figures and charts of weekly run {paths.run_id}",
    )
    if not evaluations:
        return
    create_markdown_artifact(
        run_history_markdown(paths.run_dir.parent, paths.run_id, list(evaluations), history_runs),
        key="numerflow-run-history",
        description=f"each slot's validation figures in run {paths.run_id} and its last {history_runs} runs",
    )
    create_table_artifact(
        summary_rows(evaluations),
        key="numerflow-metrics",
        description="CORR, MMC, BMC, FNC and feature exposure per slot, split and model, with eras",
    )
    create_table_artifact(
        slot_rows(evaluations, lambda e: e.per_fold),
        key="numerflow-fold-metrics",
        description="CORR per fold",
    )
    create_table_artifact(
        slot_rows(evaluations, lambda e: e.per_era["validation"]),
        key="numerflow-validation-era-corr",
        description="CORR per validation era",
    )
    create_table_artifact(
        slot_rows(evaluations, lambda e: e.per_era["oof"]),
        key="numerflow-oof-era-corr",
        description="out-of-fold CORR per era",
    )
