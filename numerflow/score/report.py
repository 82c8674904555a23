"""Human-readable run reports: the markdown summary and tables published as Prefect artifacts."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

from numerflow.score.evaluate import STACK, Evaluation
from numerflow.score.metrics import RECENT_ERAS, recent
from numerflow.submit.outcome import SubmissionOutcome

LEAD_METRICS = {"mmc": "MMC", "bmc": "BMC"}  # the contributions a participant compares next to CORR


def summary_rows(evaluations: dict[str, Evaluation]) -> list[dict[str, Any]]:
    """One row per (slot, split, metric, model) with mean, std, sharpe, max drawdown and eras,
    over all eras and the last 200: CORR out of fold and on validation, Numerai's other metrics
    on validation where they were computed."""
    rows = []
    for slot, evaluation in evaluations.items():
        tables = [(split, "corr", models) for split, models in evaluation.summary.items()]
        tables += [("validation", name, m.summary) for name, m in evaluation.validation_metrics.items()]
        for split, metric, models in tables:
            for model, figures in models.items():
                rows.append(
                    {
                        "slot": slot,
                        "split": split,
                        "metric": metric,
                        "model": model,
                        **{k: round(v, 6) if isinstance(v, float) else v for k, v in figures.items()},
                    }
                )
    return rows


def lead_table(evaluations: dict[str, Evaluation]) -> list[str]:
    """The figures a participant compares, one row per slot (its stack on validation), each with
    the number of eras behind it; then what MMC and BMC are measured against, or why they were
    not computed, once per note."""
    lines = [
        "| slot | validation CORR | sharpe | max drawdown | eras | MMC | BMC |",
        "|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for slot, evaluation in evaluations.items():
        corr = evaluation.summary["validation"][STACK]
        cells = [
            slot,
            f"**{corr['mean']:.4f}**",
            f"{corr['sharpe']:.2f}",
            f"{corr['max_drawdown']:.4f}",
            str(corr["eras"]),
        ]
        for name, label in LEAD_METRICS.items():
            metric = evaluation.validation_metrics[name]
            if metric.not_computed:
                cells.append("not computed")
                notes.append(f"- {label} not computed: {metric.not_computed}")
            else:
                figures = metric.summary[STACK]
                notes.append(f"- {label} is measured against {metric.against}")
                cells.append(
                    f"{figures['mean']:.4f} (sharpe {figures['sharpe']:.2f}, "
                    f"drawdown {figures['max_drawdown']:.4f}, {figures['eras']} eras)"
                )
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, "", *dict.fromkeys(notes)] if notes else lines


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
    device: dict[str, Any] | None = None,
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
        lines.append(f"- tier: **{device['tier']}** ({device['device_type']}): {device['reason']}")
        for step in device["downgrades"]:
            lines.append(
                f"  - {step['target']} fold {step['fold']}: {step['from']} -> {step['to']} ({step['error']})"
            )
    if changed_params:
        lines.append("- overrides: " + ", ".join(f"`{k}={v}`" for k, v in changed_params.items()))
    lines += [
        "",
        "| slot | split | metric | model | mean | std | sharpe | max drawdown | eras "
        f"| last {RECENT_ERAS} eras: mean | sharpe | max drawdown | eras |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary_rows(evaluations):
        lines.append(
            f"| {row['slot']} | {row['split']} | {row['metric']} | {row['model']} | {row['mean']:.4f} "
            f"| {row['std']:.4f} | {row['sharpe']:.2f} | {row['max_drawdown']:.4f} | {row['eras']} "
            f"| {row[recent('mean')]:.4f} | {row[recent('sharpe')]:.2f} "
            f"| {row[recent('max_drawdown')]:.4f} | {row[recent('eras')]} |"
        )
    return "\n".join(lines) + "\n"
