"""Run-over-run history: each slot's validation figures in this run and its previous weekly runs,
read back from their manifests, so a change of parameters shows as better or worse at a glance.

Runs are ordered by run id, which starts with the UTC time the run started. A manifest that
cannot be read (truncated, edited, from a version without these figures) is skipped with its
reason and a warning: the history is a report, it never fails a run.
"""

from __future__ import annotations

import logging
import math
from itertools import pairwise
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from numerflow.config.lightgbm_names import canonical_or_kept
from numerflow.live.report import run_live_cell
from numerflow.runs.manifest import SLOTS_DIR, Manifest, manifest_problem, read_manifest
from numerflow.runs.plan import short_digest
from numerflow.score.evaluate import STACK
from numerflow.score.validation import MetricScores

logger = logging.getLogger("numerflow.runs")

CONTRIBUTIONS = {"mmc": "MMC", "bmc": "BMC"}  # shown next to CORR, as in the run summary
CORR_FIGURES = ("mean", "sharpe", "max_drawdown", "eras")


class Contribution(BaseModel):
    """MMC or BMC of the stack on validation, or why it was not computed."""

    mean: float | None = None
    sharpe: float | None = None
    not_computed: str | None = None


class HistoryRow(BaseModel):
    run_id: str
    finished_at: str | None
    data_version: str
    targets: list[str]
    params_hash: str  # equal parameters (seed included) give equal hashes
    params_changed: dict[str, tuple[Any, Any]] | None  # (before, after) vs the run below; None: no run below
    corr: dict[str, float | int]  # the stack's validation CORR: mean, sharpe, max_drawdown, eras
    corr_delta: float | None  # CORR mean minus the run below's; None: no run below
    contributions: dict[str, Contribution]  # by label: MMC, BMC
    live: str = "-"  # mean final live CORR of the rounds this run submitted for the slot's model


class Skipped(BaseModel):
    path: Path
    reason: str


class SlotHistory(BaseModel):
    slot: str
    run_id: str  # the run the history is for
    rows: list[HistoryRow]  # newest first: this run, then up to `previous` earlier runs
    skipped: list[Skipped]


class _Entry(BaseModel):
    manifest: Manifest
    corr: dict[str, float | int]
    contributions: dict[str, Contribution]


def slot_history(work_dir: Path, run_id: str, slot: str, previous: int) -> SlotHistory:
    """The slot's manifests in run `run_id` and the `previous` runs before it that trained it.

    One run more than shown is read, so the oldest row shown has its change too."""
    entries: list[_Entry] = []
    skipped: list[Skipped] = []
    for run_dir in _runs_up_to(work_dir, run_id):
        path = run_dir / SLOTS_DIR / slot / "manifest.json"
        if not path.is_file():
            continue  # the slot failed, or was not configured, in that run
        try:
            entries.append(_read_entry(path))
        except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            reason = manifest_problem(exc)
            logger.warning("run history: skipped %s: %s", path, reason)
            skipped.append(Skipped(path=path, reason=reason))
            continue
        if len(entries) > previous + 1:
            break
    rows = [
        _row(entry, older).model_copy(update={"live": run_live_cell(work_dir, slot, entry.manifest.run_id)})
        for entry, older in pairwise([*entries, None])
        if entry is not None
    ]
    return SlotHistory(slot=slot, run_id=run_id, rows=rows[: previous + 1], skipped=skipped)


def _runs_up_to(work_dir: Path, run_id: str) -> list[Path]:
    """Run folders (those with slot folders) started no later than `run_id`, newest first."""
    if not work_dir.is_dir():
        return []
    runs = [p for p in work_dir.iterdir() if p.name <= run_id and (p / SLOTS_DIR).is_dir()]
    return sorted(runs, key=lambda p: p.name, reverse=True)


def _read_entry(path: Path) -> _Entry:
    manifest = read_manifest(path.parent)
    try:
        stack = manifest.metrics["summary"]["validation"][STACK]
        corr = {figure: stack[figure] for figure in CORR_FIGURES}
    except (KeyError, TypeError):
        raise ValueError("no validation CORR of the stack in its metrics") from None
    scored = manifest.metrics.get("validation", {})
    if not isinstance(scored, dict):
        raise ValueError("metrics.validation is not a mapping of metric to scores")
    contributions = {label: _contribution(scored.get(name)) for name, label in CONTRIBUTIONS.items()}
    return _Entry(manifest=manifest, corr=corr, contributions=contributions)


def _row(entry: _Entry, older: _Entry | None) -> HistoryRow:
    manifest = entry.manifest
    return HistoryRow(
        run_id=manifest.run_id,
        finished_at=manifest.finished_at,
        data_version=str(manifest.data.get("version", "?")),
        targets=manifest.targets,
        params_hash=short_digest(_canonical(manifest)),
        params_changed=None
        if older is None
        else changed_values(_canonical(older.manifest), _canonical(manifest)),
        corr=entry.corr,
        corr_delta=None if older is None else float(entry.corr["mean"]) - float(older.corr["mean"]),
        contributions=entry.contributions,
    )


def _canonical(manifest: Manifest) -> dict[str, Any]:
    """The run's parameters under LightGBM's canonical names: runs recorded before numerflow
    wrote them (n_estimators, colsample_bytree, subsample) compare with the ones after."""
    return canonical_or_kept(manifest.params)


def _contribution(metric: Any) -> Contribution:
    """The stack's figures of one metric's MetricScores record (without per-era rows)."""
    if not metric:
        return Contribution(not_computed="not in this run's manifest")
    record = MetricScores.model_validate(metric)
    if record.not_computed:
        return Contribution(not_computed=record.not_computed)
    stack = record.summary.get(STACK, {})
    return Contribution(mean=stack.get("mean"), sharpe=stack.get("sharpe"))


def changed_values(before: dict[str, Any], after: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{key: (before, after)} for every key whose value differs (None where a side lacks it)."""
    return {
        key: (before.get(key), after.get(key))
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key)
    }


def history_markdown(histories: list[SlotHistory], work_dir: Path) -> str:
    """The run-history artifact: one table per slot, newest first, this run in bold."""
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
            lines += _table(history)
        lines += [f"- skipped `{s.path}`: {s.reason}" for s in history.skipped]
    return "\n".join(lines) + "\n"


def _table(history: SlotHistory) -> list[str]:
    lines = [
        "| run | finished | data | targets | params | changed | CORR | Δ CORR | sharpe | max drawdown "
        "| eras | live CORR | MMC | BMC |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in history.rows:
        corr = row.corr
        cells = [
            f"**{row.run_id}** (this run)" if row.run_id == history.run_id else row.run_id,
            row.finished_at or "-",
            row.data_version,
            ", ".join(row.targets),
            f"`{row.params_hash}`",
            _changes(row.params_changed),
            _number(corr["mean"], 4),
            _delta(row.corr_delta),
            _number(corr["sharpe"], 2),
            _number(corr["max_drawdown"], 4),
            str(corr["eras"]),
            row.live,
            *(_contribution_cell(c) for c in row.contributions.values()),
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


def _number(value: float | int | None, decimals: int) -> str:
    return "-" if value is None else f"{value:.{decimals}f}"


def _contribution_cell(contribution: Contribution) -> str:
    if contribution.not_computed is not None or contribution.mean is None:
        return "not computed"
    return f"{contribution.mean:.4f} (sharpe {_number(contribution.sharpe, 2)})"


def run_history_markdown(work_dir: Path, run_id: str, slots: list[str], previous: int) -> str:
    """The artifact's text for run `run_id`'s slots and their `previous` earlier runs."""
    return history_markdown([slot_history(work_dir, run_id, slot, previous) for slot in slots], work_dir)
