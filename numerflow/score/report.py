"""Human-readable run reports: the markdown summary and tables published as Prefect artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from numerflow.score.evaluate import STACK, Evaluation
from numerflow.submit.steps import SubmissionOutcome


def summary_rows(evaluation: Evaluation) -> list[dict[str, Any]]:
    """One row per (split, model) with mean, std, sharpe and max drawdown of per-era CORR."""
    rows = []
    for split, models in evaluation.summary.items():
        for model, figures in models.items():
            rows.append(
                {
                    "split": split,
                    "model": model,
                    **{k: round(v, 6) if isinstance(v, float) else v for k, v in figures.items()},
                }
            )
    return rows


def markdown_summary(
    run_id: str,
    data_version: str,
    evaluation: Evaluation,
    submission: SubmissionOutcome | None,
    changed_params: dict[str, Any] | None = None,
    device: dict[str, Any] | None = None,
    run_dir: Path | None = None,
    seconds: float | None = None,
) -> str:
    validation = evaluation.summary["validation"]
    lines = [
        f"# numerflow weekly run `{run_id}`",
        "",
        f"- data version: **{data_version}**",
        f"- stacking: **{evaluation.stacker.kind}** "
        + ", ".join(
            f"{c}={w:.3f}"
            for c, w in zip(evaluation.stacker.columns, evaluation.stacker.weights, strict=True)
        ),
        f"- validation CORR (stack): **{validation[STACK]['mean']:.4f}** mean, "
        f"sharpe {validation[STACK]['sharpe']:.2f} over {validation[STACK]['eras']} eras",
    ]
    if submission is not None and submission.submission is not None:
        record = submission.submission
        lines.append(
            f"- submission ({submission.status}, round {submission.round or '-'}): `{record.path}` "
            f"({record.rows} rows, sha256 {record.sha256[:12]})"
        )
        for upload in submission.uploads:
            lines.append(f"  - {upload.model}: {upload.status} {upload.submission_id or upload.detail}")
    if run_dir is not None:
        lines.append(f"- models: `{run_dir / 'models'}` (manifest: `{run_dir / 'manifest.json'}`)")
    if seconds is not None:
        training = sum(row["seconds"] for row in evaluation.per_fold)
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
        "| split | model | mean | std | sharpe | max drawdown |",
        "|---|---|---|---|---|---|",
    ]
    for row in summary_rows(evaluation):
        lines.append(
            f"| {row['split']} | {row['model']} | {row['mean']:.4f} | {row['std']:.4f} "
            f"| {row['sharpe']:.2f} | {row['max_drawdown']:.4f} |"
        )
    return "\n".join(lines) + "\n"
