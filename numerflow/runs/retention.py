"""Retention: what of the work folder and the data folder can go, and removing it.

Kept, whatever `training.retention` says:
- each slot's newest `weekly_runs` run folders (by run id, which starts with the UTC start time),
  the run its `latest/<slot>` pointer names, and the run `LATEST` names;
- runs the ledger names for a round not yet resolved: Numerai scores a round for about four
  weeks after it closes (20 daily rounds), so the newest `UNRESOLVED_ROUNDS` rounds in the ledger;
- any run folder newer than the newest finished run (a run still training has no manifest yet);
- the newest `live_files` `live_<round>.parquet` of each data version;
- with `data_versions: true` only: every data version but the one in use (configured, or the
  version a kept run trained on) and the newest; without it, every data version.
The bins and fold caches prune themselves by age when a run starts (`numerflow.cachedirs`).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from numerflow.config.models import TrainingConfig
from numerflow.numerai import ledger
from numerflow.runs.manifest import LATEST_DIR, LATEST_POINTER, SLOTS_DIR

RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")
# a round's live file and the download's `.source.json` sidecar (its ETag) go together
LIVE_FILE = re.compile(r"^live_(\d+)\.parquet(\.source\.json)?$")
VERSION = re.compile(r"^v(\d+)\.(\d+)$")
UNRESOLVED_ROUNDS = 20


@dataclass(frozen=True)
class Removal:
    path: Path
    bytes: int
    reason: str


@dataclass
class PrunePlan:
    removals: list[Removal] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.removals)


def path_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def run_folders(work_dir: Path) -> list[Path]:
    """Run folders, oldest first."""
    if not work_dir.is_dir():
        return []
    return sorted(p for p in work_dir.iterdir() if p.is_dir() and RUN_ID.match(p.name))


def live_files(data_dir: Path) -> list[Path]:
    if not data_dir.is_dir():
        return []
    return [f for v in data_dir.iterdir() if v.is_dir() for f in v.iterdir() if LIVE_FILE.match(f.name)]


def live_round(path: Path) -> int:
    match = LIVE_FILE.match(path.name)
    assert match is not None
    return int(match[1])


def data_versions(data_dir: Path) -> list[Path]:
    """Data version folders, oldest version first."""
    if not data_dir.is_dir():
        return []
    found = [p for p in data_dir.iterdir() if p.is_dir() and VERSION.match(p.name)]
    return sorted(found, key=_version_key)


def plan_prune(training: TrainingConfig) -> PrunePlan:
    """What retention would remove now, each with its size and why."""
    work_dir, keep = training.work_dir, training.retention
    runs = run_folders(work_dir)
    kept_runs = _runs_to_keep(work_dir, runs, keep.weekly_runs)
    plan = PrunePlan()
    for run in runs:
        if run.name not in kept_runs:
            finished = any((run / SLOTS_DIR).glob("*/manifest.json"))
            why = f"older than each slot's newest {keep.weekly_runs}" if finished else "never finished"
            plan.removals.append(Removal(run, path_bytes(run), f"run folder {why}"))

    data_dir = training.data.dir
    by_version: dict[Path, dict[int, list[Path]]] = {}
    for live in live_files(data_dir):
        rounds = by_version.setdefault(live.parent, {})
        rounds.setdefault(live_round(live), []).append(live)
    for rounds in by_version.values():
        for number in sorted(rounds, reverse=True)[keep.live_files :]:
            for live in sorted(rounds[number]):
                why = f"live file older than the newest {keep.live_files} rounds"
                plan.removals.append(Removal(live, path_bytes(live), why))

    if keep.data_versions:
        versions = data_versions(data_dir)
        in_use = {training.data.version} | {_trained_version(work_dir / r) for r in kept_runs}
        for version in versions[:-1]:  # the newest stays
            if version.name not in in_use:
                plan.removals.append(
                    Removal(version, path_bytes(version), "data version neither in use nor newest")
                )
    return plan


def apply_prune(plan: PrunePlan) -> list[Removal]:
    """Remove what the plan lists; returns what was removed (a path already gone is skipped)."""
    removed = []
    for removal in plan.removals:
        if removal.path.is_dir():
            shutil.rmtree(removal.path)
        elif removal.path.is_file():
            removal.path.unlink()
        else:
            continue
        removed.append(removal)
    return removed


def _runs_to_keep(work_dir: Path, runs: list[Path], per_slot: int) -> set[str]:
    keep: set[str] = set()
    by_slot: dict[str, list[str]] = {}
    for run in runs:
        for manifest in (run / SLOTS_DIR).glob("*/manifest.json"):
            by_slot.setdefault(manifest.parent.name, []).append(run.name)
    for names in by_slot.values():
        keep.update(names[-per_slot:])
    pointers = [work_dir / LATEST_POINTER, *_files(work_dir / LATEST_DIR)]
    keep.update(p.read_text(encoding="utf-8").strip() for p in pointers if p.is_file())
    entries = ledger.entries(work_dir)
    if entries:
        newest = max(e.round for e in entries)
        keep.update(e.trained_run_id for e in entries if e.round > newest - UNRESOLVED_ROUNDS)
    finished = [name for names in by_slot.values() for name in names]
    if finished:  # a run newer than every finished one may still be training
        keep.update(run.name for run in runs if run.name > max(finished))
    else:
        keep.update(run.name for run in runs)
    return keep


def _files(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.is_file()] if directory.is_dir() else []


def _trained_version(run: Path) -> str | None:
    try:
        return json.loads((run / "plan.json").read_text(encoding="utf-8"))["data"]["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _version_key(path: Path) -> tuple[int, int]:
    match = VERSION.match(path.name)
    assert match is not None
    return int(match[1]), int(match[2])
