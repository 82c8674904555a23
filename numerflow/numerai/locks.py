"""Critical sections shared by every process and host that uses the same work folder.

filelock's `SoftFileLease` is a marker file with a heartbeat: it needs no kernel lock, so it
also excludes processes on other hosts of a shared disk (NFS, SMB), where flock may be
local-only (e.g. NFS mounted `nolock`). A holder killed on this host is seen dead at once (its
pid); one on another host loses the lease after `LEASE_SECONDS` without a heartbeat.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import SoftFileLease, Timeout

from numerflow.numerai.errors import NumeraiError

# Longer than NFS attribute caching (up to 60 s), so peers see each heartbeat before expiry.
LEASE_SECONDS = 120.0
WAIT_FOREVER = -1.0


class LockLost(NumeraiError):
    """Another process took over the lease (this one stalled past it): stop before acting."""


class LockBusy(NumeraiError):
    """Another process held the lock for longer than we were willing to wait."""


@contextmanager
def held(lock_path: Path, wait_seconds: float, what: str) -> Iterator[SoftFileLease]:
    """Hold the lease on `lock_path`, waiting up to `wait_seconds` (negative: until free)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lease = SoftFileLease(lock_path, lease_duration=LEASE_SECONDS)
    try:
        lease.acquire(timeout=wait_seconds)
    except Timeout:
        raise LockBusy(
            f"{what}: another numerflow process held {lock_path} for over {wait_seconds:.0f} s"
        ) from None
    try:
        yield lease
    finally:
        lease.release()


def check_still_held(lease: SoftFileLease, what: str) -> None:
    """Raise `LockLost` if the heartbeat saw the lease taken over."""
    if lease.compromise is not None:
        raise LockLost(f"{what}: the lock was taken over ({lease.compromise.reason}); stopping here")
