"""Human-readable run reports: the markdown summary and tables published as Prefect artifacts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from numerflow.score.evaluate import STACK, Evaluation
from numerflow.submit.steps import SubmissionOutcome


def summary_rows(evaluations: dict[str, Evaluation]) -> list[dict[str, Any]]:
    """One row per (slot, split, model) with mean, std, sharpe and max drawdown of per-era CORR."""
    rows = []
    for slot, evaluation in evaluations.items():
        for split, models in evaluation.summary.items():
            for model, figures in models.items():
                rows.append(
                    {
                        "slot": slot,
                        "split": split,
                        "model": model,
                        **{k: round(v, 6) if isinstance(v, float) else v for k, v in figures.items()},
                    }
                )
    return rows


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
) -> str:
    lines = [f"# numerflow weekly run `{run_id}`", "", f"- data version: **{data_version}**"]
    for slot, evaluation in evaluations.items():
        validation = evaluation.summary["validation"][STACK]
        weights = ", ".join(
            f"{c}={w:.3f}"
            for c, w in zip(evaluation.stacker.columns, evaluation.stacker.weights, strict=True)
        )
        lines.append(
            f"- slot **{slot}**: validation CORR (stack) **{validation['mean']:.4f}** mean, "
            f"sharpe {validation['sharpe']:.2f} over {validation['eras']} eras; "
            f"stacking {evaluation.stacker.kind} {weights}"
        )
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
        "| slot | split | model | mean | std | sharpe | max drawdown |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in summary_rows(evaluations):
        lines.append(
            f"| {row['slot']} | {row['split']} | {row['model']} | {row['mean']:.4f} | {row['std']:.4f} "
            f"| {row['sharpe']:.2f} | {row['max_drawdown']:.4f} |"
        )
    return "\n".join(lines) + "\n"
