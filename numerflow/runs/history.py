"""Run-over-run history: each slot's validation figures in this run and its previous weekly runs,
read back from their manifests, so a change of parameters shows as better or worse at a glance
(`numerflow.report.history` renders it).

Runs are ordered by run id, which starts with the UTC time the run started. A manifest that
cannot be read (truncated, edited, from a version without these figures) is skipped with its
reason and a warning: the history is a report, it never fails a run.
"""

from __future__ import annotations

import logging
from itertools import pairwise
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from numerflow.config.lightgbm_names import canonical_or_kept
from numerflow.runs.manifest import SLOTS_DIR, Manifest, StoredMetric, manifest_problem, read_manifest
from numerflow.runs.plan import short_digest
from numerflow.score.results import STACK, Figures
from numerflow.score.validation import LEAD_METRICS

logger = logging.getLogger("numerflow.runs")


class Contribution(BaseModel):
    """A lead metric (MMC, BMC) of the stack on validation, or why it was not computed."""

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
    corr: Figures  # the stack's validation CORR
    corr_delta: float | None  # CORR mean minus the run below's; None: no run below
    contributions: dict[str, Contribution]  # by label of the lead metrics: MMC, BMC


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
    corr: Figures
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
    rows = [_row(entry, older) for entry, older in pairwise([*entries, None]) if entry is not None]
    return SlotHistory(slot=slot, run_id=run_id, rows=rows[: previous + 1], skipped=skipped)


def _runs_up_to(work_dir: Path, run_id: str) -> list[Path]:
    """Run folders (those with slot folders) started no later than `run_id`, newest first."""
    if not work_dir.is_dir():
        return []
    runs = [p for p in work_dir.iterdir() if p.name <= run_id and (p / SLOTS_DIR).is_dir()]
    return sorted(runs, key=lambda p: p.name, reverse=True)


def _read_entry(path: Path) -> _Entry:
    manifest = read_manifest(path.parent)
    stack = manifest.metrics.summary.validation.get(STACK)
    if stack is None:
        raise ValueError("no validation CORR of the stack in its metrics")
    scored = manifest.metrics.validation
    contributions = {label: _contribution(scored.get(name)) for name, label in LEAD_METRICS.items()}
    return _Entry(manifest=manifest, corr=stack, contributions=contributions)


def _row(entry: _Entry, older: _Entry | None) -> HistoryRow:
    manifest = entry.manifest
    return HistoryRow(
        run_id=manifest.run_id,
        finished_at=manifest.finished_at,
        data_version=manifest.data.version,
        targets=manifest.targets,
        params_hash=short_digest(_canonical(manifest)),
        params_changed=None
        if older is None
        else changed_values(_canonical(older.manifest), _canonical(manifest)),
        corr=entry.corr,
        corr_delta=None if older is None else entry.corr.mean - older.corr.mean,
        contributions=entry.contributions,
    )


def _canonical(manifest: Manifest) -> dict[str, Any]:
    """The run's parameters under LightGBM's canonical names: runs recorded before numerflow
    wrote them (n_estimators, colsample_bytree, subsample) compare with the ones after."""
    return canonical_or_kept(manifest.params)


def _contribution(metric: StoredMetric | None) -> Contribution:
    """The stack's figures of one metric's record in the manifest."""
    if metric is None:
        return Contribution(not_computed="not in this run's manifest")
    if metric.not_computed:
        return Contribution(not_computed=metric.not_computed)
    stack = metric.summary.get(STACK)
    return Contribution() if stack is None else Contribution(mean=stack.mean, sharpe=stack.sharpe)


def changed_values(before: dict[str, Any], after: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{key: (before, after)} for every key whose value differs (None where a side lacks it)."""
    return {
        key: (before.get(key), after.get(key))
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key)
    }
