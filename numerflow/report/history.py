"""The run-history artifact: each slot's runs as a table, newest first, with CORR, its change,
the live CORR of the rounds each run submitted, and the lead metrics."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from numerflow.live.report import run_live_cell
from numerflow.runs.history import Contribution, SlotHistory, slot_history
from numerflow.score.validation import LEAD_METRICS


def history_markdown(histories: list[SlotHistory], work_dir: Path) -> str:
    """The run-history artifact: one table per slot, newest first, this run in bold; the live
    column from the live scores stored in `work_dir`."""
    if all(len(h.rows) <= 1 for h in histories):
        return f"No previous weekly runs in `{work_dir}` to compare this run with.\n"
    lines = [
        "# Run-over-run history",
        "",
        "Validation CORR of each slot's stack in this run and its previous weekly runs, newest first. "
        "Δ CORR is the change from the run below (▲ better, ▼ worse); runs are comparable where "
        "data version and eras agree. `params` is a hash of the LightGBM parameters and seed. "
        "Live CORR: Numerai's resolved live CORR of the rounds the run submitted (mean).",
    ]
    for history in histories:
        lines += ["", f"## slot {history.slot}", ""]
        if len(history.rows) <= 1:
            lines.append("No previous runs of this slot.")
        else:
            lines += _table(history, work_dir)
        lines += [f"- skipped `{s.path}`: {s.reason}" for s in history.skipped]
    return "\n".join(lines) + "\n"


def _table(history: SlotHistory, work_dir: Path) -> list[str]:
    columns = ["run", "finished", "data", "targets", "params", "changed", "CORR", "Δ CORR", "sharpe"]
    columns += ["max drawdown", "eras", "live CORR", *LEAD_METRICS.values()]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in history.rows:
        corr = row.corr
        cells = [
            f"**{row.run_id}** (this run)" if row.run_id == history.run_id else row.run_id,
            row.finished_at or "-",
            row.data_version,
            ", ".join(row.targets),
            f"`{row.params_hash}`",
            _changes(row.params_changed),
            _number(corr.mean, 4),
            _delta(row.corr_delta),
            _number(corr.sharpe, 2),
            _number(corr.max_drawdown, 4),
            str(corr.eras),
            run_live_cell(work_dir, history.slot, row.run_id),
            *(_contribution_cell(row.contributions[label]) for label in LEAD_METRICS.values()),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _changes(changed: dict[str, tuple[Any, Any]] | None) -> str:
    if changed is None:
        return "-"
    return ", ".join(f"{key} {old} → {new}" for key, (old, new) in changed.items()) or "none"


def _delta(delta: float | None) -> str:
    if delta is None or math.isnan(delta):
        return "-"
    if delta == 0:
        return "= 0"
    return f"{'▲' if delta > 0 else '▼'} {delta:+.4f}"


def _number(value: float | None, decimals: int) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{decimals}f}"


def _contribution_cell(contribution: Contribution) -> str:
    if contribution.not_computed is not None or contribution.mean is None or math.isnan(contribution.mean):
        return "not computed"
    return f"{contribution.mean:.4f} (sharpe {_number(contribution.sharpe, 2)})"


def run_history_markdown(work_dir: Path, run_id: str, slots: list[str], previous: int) -> str:
    """The artifact's text for run `run_id`'s slots and their `previous` earlier runs."""
    return history_markdown([slot_history(work_dir, run_id, slot, previous) for slot in slots], work_dir)
