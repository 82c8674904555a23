"""The weekly run's summary: the markdown lead table and details, and the rows of the tables
published as Prefect artifacts."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from numerflow.runs.manifest import DeviceRecord
from numerflow.score.results import RECENT_ERAS, STACK, Evaluation, Figures, ScoreFigures
from numerflow.score.validation import LEAD_METRICS
from numerflow.submit.outcome import SubmissionOutcome


def summary_rows(evaluations: dict[str, Evaluation]) -> list[dict[str, Any]]:
    """One row per (slot, split, metric, model) with mean, std, sharpe, max drawdown and eras,
    over all eras and the last 200: CORR out of fold and on validation, Numerai's other metrics
    on validation where they were computed."""
    return [
        {"slot": slot, "split": split, "metric": metric, "model": model, **_rounded(figures)}
        for slot, split, metric, model, figures in _figures(evaluations)
    ]


def _figures(evaluations: dict[str, Evaluation]) -> Iterator[tuple[str, str, str, str, ScoreFigures]]:
    for slot, evaluation in evaluations.items():
        tables = [(split, "corr", models) for split, models in evaluation.summary]
        tables += [("validation", name, m.summary) for name, m in evaluation.validation_metrics.items()]
        for split, metric, models in tables:
            for model, figures in models.items():
                yield slot, split, metric, model, figures


def _rounded(figures: Figures) -> dict[str, Any]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in figures.model_dump().items()}


def lead_table(evaluations: dict[str, Evaluation]) -> list[str]:
    """The figures a participant compares, one row per slot (its stack on validation), each with
    the number of eras behind it; then what MMC and BMC are measured against, or why they were
    not computed, once per note."""
    columns = ["slot", "validation CORR", "sharpe", "max drawdown", "eras", *LEAD_METRICS.values()]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    notes: list[str] = []
    for slot, evaluation in evaluations.items():
        corr = evaluation.summary.validation[STACK]
        cells = [
            slot,
            f"**{corr.mean:.4f}**",
            f"{corr.sharpe:.2f}",
            f"{corr.max_drawdown:.4f}",
            str(corr.eras),
        ]
        for name, label in LEAD_METRICS.items():
            metric = evaluation.validation_metrics[name]
            if metric.not_computed:
                cells.append("not computed")
                notes.append(f"- {label} not computed: {metric.not_computed}")
            else:
                notes.append(f"- {label} is measured against {metric.against}")
                cells.append(_lead_cell(metric.summary[STACK]))
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, "", *dict.fromkeys(notes)] if notes else lines


def _lead_cell(figures: Figures) -> str:
    return (
        f"{figures.mean:.4f} (sharpe {figures.sharpe:.2f}, "
        f"drawdown {figures.max_drawdown:.4f}, {figures.eras} eras)"
    )


def chart_markdown(slot: str, png: bytes) -> str:
    """The slot's chart inline, as a data URI: Prefect's UI (v1 and v2) shows markdown images
    with data URIs, and the image stays with the artifact however the server is reached."""
    return f"![validation chart of slot {slot}](data:image/png;base64,{base64.b64encode(png).decode()})"


def slot_rows(
    evaluations: dict[str, Evaluation], table: Callable[[Evaluation], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """One table's rows (per era, per fold) of every slot, each marked with its slot."""
    return [{"slot": slot, **row} for slot, evaluation in evaluations.items() for row in table(evaluation)]


def markdown_summary(
    run_id: str,
    data_version: str,
    evaluations: dict[str, Evaluation],
    failed: dict[str, str],
    submission: SubmissionOutcome | None,
    changed_params: dict[str, Any] | None = None,
    device: DeviceRecord | None = None,
    run_dir: Path | None = None,
    seconds: float | None = None,
    charts: dict[str, bytes] | None = None,
    live: str | None = None,
) -> str:
    """The run at a glance: the lead table, each slot's validation chart (PNG bytes by slot),
    then the stored live Numerai scores (`live`, markdown), the run's details and the full
    metrics table."""
    lines = [f"# numerflow weekly run `{run_id}`", ""]
    if evaluations:
        lines += [*lead_table(evaluations), ""]
    for slot, png in (charts or {}).items():
        lines += [chart_markdown(slot, png), ""]
    if live:
        lines += [live, ""]
    lines.append(f"- data version: **{data_version}**")
    for slot, evaluation in evaluations.items():
        weights = ", ".join(
            f"{c}={w:.3f}"
            for c, w in zip(evaluation.stacker.columns, evaluation.stacker.weights, strict=True)
        )
        lines.append(f"- slot **{slot}**: stacking {evaluation.stacker.kind} {weights}")
    for slot, reason in failed.items():
        lines.append(f"- slot **{slot}**: FAILED: {reason}")
    if submission is not None:
        for entry in submission.slots:
            if entry.submission is not None:
                record = entry.submission
                lines.append(
                    f"- submission of {entry.slot} ({submission.status}, round {submission.round or '-'}): "
                    f"`{record.path}` ({record.rows} rows, sha256 {record.sha256[:12]})"
                )
            elif entry.error is not None:
                lines.append(f"- submission of {entry.slot}: not made: {entry.error}")
        for upload in submission.uploads:
            lines.append(f"  - {upload.model}: {upload.status} {upload.submission_id or upload.detail}")
    if run_dir is not None:
        lines.append(f"- models: `{run_dir / 'models'}` (plan and slot manifests under `{run_dir}`)")
    if seconds is not None:
        training = sum(row["seconds"] for e in evaluations.values() for row in e.per_fold)
        lines.append(f"- durations: run {seconds:.0f} s, fold training {training:.0f} s")
    if device is not None:
        lines.append(f"- device: **{device.choice}** ({device.device_type}): {device.reason}")
        for step in device.downgrades:
            lines.append(f"  - {step.target} fold {step.fold}: {step.from_} -> {step.to} ({step.error})")
    if changed_params:
        lines.append("- overrides: " + ", ".join(f"`{k}={v}`" for k, v in changed_params.items()))
    lines += [
        "",
        "| slot | split | metric | model | mean | std | sharpe | max drawdown | eras "
        f"| last {RECENT_ERAS} eras: mean | sharpe | max drawdown | eras |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for slot, split, metric, model, figures in _figures(evaluations):
        every, recent = _rounded_figures(figures), _rounded_figures(figures.recent)
        lines.append(
            f"| {slot} | {split} | {metric} | {model} | {every.mean:.4f} | {every.std:.4f} "
            f"| {every.sharpe:.2f} | {every.max_drawdown:.4f} | {every.eras} "
            f"| {recent.mean:.4f} | {recent.sharpe:.2f} | {recent.max_drawdown:.4f} | {recent.eras} |"
        )
    return "\n".join(lines) + "\n"


def _rounded_figures(figures: Figures | None) -> Figures:
    """Rounded to 6 decimals, as in the metrics table artifact; NaN where there are none."""
    if figures is None:
        nan = float("nan")
        return Figures(mean=nan, std=nan, sharpe=nan, max_drawdown=nan, eras=0)
    return Figures.model_validate(_rounded(figures))
