"""The process worker for numerflow's pool, started so that it stops when asked.

`prefect worker start` turns SIGTERM into a SIGINT to itself. A worker started in the background
from a script (`cmd &`, nohup, some service wrappers) inherits SIGINT *ignored*, so that SIGINT
is dropped and SIGTERM never stops it (measured: still running 30 s after SIGTERM, against 2 s
with SIGINT at its default). `numerflow worker` restores SIGINT's default, then becomes the
Prefect worker (exec), so the worker gets the signals itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def venv_command(name: str) -> Path:
    """A console script of this environment by its full path (runs without `uv run` or an
    activated venv, from any folder)."""
    return Path(sys.executable).with_name(f"{name}.exe" if os.name == "nt" else name)


def worker_argv(pool: str, limit: int, name: str | None = None) -> list[str]:
    argv = [str(venv_command("prefect")), "worker", "start", "--pool", pool, "--limit", str(limit)]
    return [*argv, "--name", name] if name else argv


def run_worker(argv: list[str]) -> None:
    """Become the worker (POSIX), or run it and exit with its status."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # inherited across exec as default, not ignored
    if os.name == "posix":
        os.execv(argv[0], argv)
    raise SystemExit(subprocess.call(argv))
