"""Disk used by each part of a numerflow install, and what retention would free: `numerflow status`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.settings import get_current_settings

from numerflow.config.models import TrainingConfig
from numerflow.runs.retention import live_files, path_bytes, plan_prune, run_folders
from numerflow.train.foldcache import CACHE_DIR_NAME

SQLITE_PREFIX = "sqlite+aiosqlite:///"


def prefect_database() -> Path | None:
    """The Prefect server's SQLite file as this process's settings name it; None for PostgreSQL
    (its size is the database server's to report)."""
    url = get_current_settings().server.database.connection_url
    text = url.get_secret_value() if url is not None else ""
    return Path(text.removeprefix(SQLITE_PREFIX)) if text.startswith(SQLITE_PREFIX) else None


def database_bytes(database: Path | None) -> int | None:
    if database is None or not database.is_file():
        return None
    # SQLite's write-ahead log holds recent pages until a checkpoint folds them in
    return sum(path_bytes(database.with_name(database.name + s)) for s in ("", "-wal", "-shm"))


def disk_parts(training: TrainingConfig, database: Path | None) -> dict[str, int | None]:
    """Bytes per part: run folders, live files, the rest of the data, bins, fold cache, Prefect DB."""
    lives = sum(path_bytes(p) for p in live_files(training.data.dir))
    data = path_bytes(training.data.dir)
    return {
        "runs": sum(path_bytes(p) for p in run_folders(training.work_dir)),
        "live files": lives,
        "data": data - lives,
        "bins": path_bytes(training.bins_root()),
        "fold cache": path_bytes(training.work_dir / CACHE_DIR_NAME),
        "prefect db": database_bytes(database),
    }


def disk_status(training: TrainingConfig) -> dict[str, Any]:
    plan = plan_prune(training)
    return {
        "parts": disk_parts(training, prefect_database()),
        "retention_frees": plan.bytes,
        "retention_removes": len(plan.removals),
    }
