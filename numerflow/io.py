"""Atomic file writes: a reader sees the old file or the complete new one, never a part.

Everything numerflow writes that another step or process reads (data, manifests, submissions)
goes through `atomic_path`: write to a temporary file in the same folder, flush it to disk,
then `os.replace` it onto the target. On any error the temporary file is removed. On Windows a
virus scanner or the search indexer may hold the new file open for a moment, which makes the
replace fail with a sharing violation; `replace_with_retry` waits that out.

A write that finds the disk full raises `DiskFullError`, which names the file and the space
left; `atomic_path` then leaves only the old file (or none), so the next run, once there is
space, writes it afresh. Any other module that writes a file numerflow later reads (for example
a pickled model) uses `atomic_path` too, or wraps its own writes in `naming_full_disk`.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
    try:
        with naming_full_disk(target):
            yield tmp
            _fsync(tmp)
            replace_with_retry(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class DiskFullError(OSError):
    """A write found no space left: the message names the file, the free space and the fix."""


# ENOSPC, and EDQUOT (a user's quota is full); Python maps Windows' ERROR_DISK_FULL to ENOSPC.
NO_SPACE = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


@contextmanager
def naming_full_disk(path: str | Path) -> Iterator[None]:
    """Re-raise a full-disk `OSError` from the block as `DiskFullError` naming `path`."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as exc:
        if exc.errno not in NO_SPACE:
            raise
        error = DiskFullError(
            f"{path}: the disk is full ({_free_space(Path(path))}); nothing half-written was kept. "
            "Free some space (old run folders in the work directory, older data versions) and run again"
        )
        error.errno = errno.ENOSPC
        raise error from exc


def _free_space(path: Path) -> str:
    """'12.0 MiB free on /data', for the nearest existing folder of `path`."""
    folder = next((p for p in (path, *path.parents) if p.is_dir()), Path.cwd())
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return f"free space on {folder} unknown"
    return f"{free / 2**20:.1f} MiB free on {folder}"


# Windows error codes for a file another process holds open: ERROR_ACCESS_DENIED, ERROR_SHARING_VIOLATION.
SHARING_VIOLATIONS = (5, 32)
REPLACE_RETRY_DELAYS_S = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)  # about 3 s in all


def replace_with_retry(source: Path, target: Path) -> None:
    """`os.replace(source, target)`, retried while Windows reports a sharing violation."""
    for delay in (*REPLACE_RETRY_DELAYS_S, None):
        try:
            os.replace(source, target)
            return
        except PermissionError as exc:
            if delay is None or getattr(exc, "winerror", None) not in SHARING_VIOLATIONS:
                raise
            time.sleep(delay)


def remove_stale_temps(target: str | Path) -> list[Path]:
    """Delete the temporary files `atomic_path` left beside `target` when its process was
    killed. Only call it while holding the lock that guards writes to `target`."""
    target = Path(target)
    stale = list(target.parent.glob(f".{glob.escape(target.name)}.*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def write_text_atomic(target: str | Path, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json_atomic(target: str | Path, data: Any) -> Path:
    return write_text_atomic(target, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def write_yaml_atomic(target: str | Path, data: Any) -> Path:
    return write_text_atomic(target, yaml.safe_dump(data, sort_keys=False))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    # Writable: on Windows fsync (FlushFileBuffers) refuses a read-only handle.
    with open(path, "r+b") as handle:
        os.fsync(handle.fileno())
