"""Hold off Windows' idle sleep while a run works, and let go after.

Windows' idle timer sleeps a PC nobody touches (30 minutes on battery by default), which
suspends a multi-hour training mid-run. `SetThreadExecutionState(ES_CONTINUOUS |
ES_SYSTEM_REQUIRED)` tells it the system is in use until the same thread clears the flag
(learn.microsoft.com, "SetThreadExecutionState function"); the display may still turn off. It
does not stop a sleep the user asks for, nor a lid closed on a laptop set to sleep. One Win32
call through ctypes: a library for it would bring more than it saves.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

ES_CONTINUOUS = 0x80000000
ES_SYSTEM_REQUIRED = 0x00000001


def _set_thread_execution_state(flags: int) -> int:
    return ctypes.windll.kernel32.SetThreadExecutionState(flags)  # type: ignore[attr-defined]


@contextmanager
def keep_awake(
    windows: bool = os.name == "nt", set_state: Callable[[int], int] | None = None
) -> Iterator[None]:
    """No idle sleep on Windows until the block ends (a no-op elsewhere). The flag belongs to
    the calling thread, so it is set and cleared on the thread that runs the block. On exit the
    state before the block comes back, so a subflow's block ending inside its parent flow's (the
    round flow's submission) leaves the parent's hold in place."""
    if not windows:
        yield
        return
    set_state = set_state or _set_thread_execution_state
    before = set_state(ES_CONTINUOUS | ES_SYSTEM_REQUIRED)
    try:
        yield
    finally:
        set_state(before or ES_CONTINUOUS)  # 0: the call failed, so nothing of ours to keep
