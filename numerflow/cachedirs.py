"""Pruning of the cache folders (fold cache, bins cache): one entry per key, a marker file inside."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

DAY = 86_400


def prune_entries(root: Path, marker: str, keep_days: float, staging_keep_days: float | None = None) -> int:
    """Remove entry folders whose marker (or, without one, the folder) is older than `keep_days`.

    Folders named `.*` are private staging folders of builds; with `staging_keep_days` they get
    their own, usually shorter, limit (a build killed half-way leaves one that nothing reads).
    Returns how many were removed.
    """
    if not root.is_dir():
        return 0
    now = time.time()
    removed = 0
    for entry in root.iterdir():
        if not entry.is_dir():
            continue
        staging = staging_keep_days is not None and entry.name.startswith(".")
        cutoff = now - (staging_keep_days if staging else keep_days) * DAY
        stamp = (entry / marker).stat().st_mtime if (entry / marker).is_file() else entry.stat().st_mtime
        if stamp < cutoff:
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed
