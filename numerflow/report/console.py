"""What the CLI prints of a trained slot: its stack's validation CORR, then each lead metric
with its eras and what it is measured against, or why it was not computed."""

from __future__ import annotations

from numerflow.score.results import STACK, Figures, MetricScores
from numerflow.score.validation import LEAD_METRICS


def validation_lines(corr: Figures, metrics: dict[str, MetricScores], label: str = "") -> list[str]:
    """`label` follows each metric's name (a slot's name when there are several)."""
    lines = [f"validation CORR{label}: mean {corr.mean:.4f}, sharpe {corr.sharpe:.2f} over {corr.eras} eras"]
    for name, title in LEAD_METRICS.items():
        metric = metrics[name]
        if metric.not_computed:
            lines.append(f"validation {title}{label}: not computed: {metric.not_computed}")
        else:
            figures = metric.summary[STACK]
            lines.append(
                f"validation {title}{label}: mean {figures.mean:.4f}, sharpe {figures.sharpe:.2f} "
                f"over {figures.eras} eras (against {metric.against})"
            )
    return lines
