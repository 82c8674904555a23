"""The process worker for numerflow's pool, started so that it stops when asked.

`prefect worker start` turns SIGTERM into a SIGINT to itself. A worker started in the background
from a script (`cmd &`, nohup, some service wrappers) inherits SIGINT *ignored*, so that SIGINT
is dropped and SIGTERM never stops it (measured: still running 30 s after SIGTERM, against 2 s
with SIGINT at its default). `numerflow worker` restores SIGINT's default, then becomes the
Prefect worker (exec), so the worker gets the signals itself. On Windows, which has no exec, it
runs the worker as a child tied to it by a Job Object: stopping `numerflow worker` stops both.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def venv_command(name: str) -> Path:
    """A console script of this environment by its full path (runs without `uv run` or an
    activated venv, from any folder)."""
    return Path(sys.executable).with_name(f"{name}.exe" if os.name == "nt" else name)


def worker_argv(pool: str, limit: int, name: str | None = None) -> list[str]:
    argv = [str(venv_command("prefect")), "worker", "start", "--pool", pool, "--limit", str(limit)]
    return [*argv, "--name", name] if name else argv


def run_worker(
    argv: list[str],
    windows: bool = os.name == "nt",
    end_with_us: Callable[[subprocess.Popen], object] | None = None,
) -> None:
    """Become the worker (POSIX), or run it, tied to this process, and exit with its status."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # inherited across exec as default, not ignored
    if not windows:
        os.execv(argv[0], argv)
    child = subprocess.Popen(argv)
    _job = (end_with_us or end_with_this_process)(child)  # its handle lives while we wait
    raise SystemExit(child.wait())


def end_with_this_process(child: subprocess.Popen) -> object:
    """Windows does not end a process's children with it: a `numerflow worker` stopped by
    `taskkill /F` or Task Scheduler would leave its `prefect worker` running. A Job Object that
    kills what it holds when its last handle closes (JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE) ends
    the child with this process, however it ends. Flow runs the worker starts break away
    silently, as on POSIX, where killing the worker leaves a running flow alone. Returns the
    job: its handle must live as long as this process waits."""
    import win32api
    import win32con
    import win32job

    job = win32job.CreateJobObject(None, "")
    limits = win32job.QueryInformationJobObject(job, win32job.JobObjectExtendedLimitInformation)
    limits["BasicLimitInformation"]["LimitFlags"] |= (
        win32job.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | win32job.JOB_OBJECT_LIMIT_SILENT_BREAKAWAY_OK
    )
    win32job.SetInformationJobObject(job, win32job.JobObjectExtendedLimitInformation, limits)
    process = win32api.OpenProcess(win32con.PROCESS_SET_QUOTA | win32con.PROCESS_TERMINATE, False, child.pid)
    win32job.AssignProcessToJobObject(job, process)
    win32api.CloseHandle(process)
    return job
