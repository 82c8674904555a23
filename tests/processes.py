"""Background processes that tests start from the venv's commands and stop themselves."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
WINDOWS = sys.platform == "win32"


class ProcessGroup:
    """Commands from the venv's bin, each logging to `<logs>/<name>.log`, stopped newest first."""

    def __init__(self, logs: Path, cwd: Path, env: dict[str, str], stop_signal: int = signal.SIGINT) -> None:
        self.logs, self.cwd, self.env, self.stop_signal = logs, cwd, env, stop_signal
        self._processes: list[tuple[subprocess.Popen, object]] = []

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "w")  # noqa: SIM115 - closed in stop()
        process = subprocess.Popen([BIN / args[0], *args[1:]], env=self.env, cwd=self.cwd,
                                   stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        self._processes.append((process, log))
        return process

    def stop(self, name: str | None = None) -> None:
        """The process called `name`, or all of them newest first: a worker whose server is
        already gone can hang on shutdown."""
        for process, log in reversed(list(self._processes)):
            if name is not None and Path(log.name).stem != name:
                continue
            if process.poll() is None:
                ask_to_stop(process, self.stop_signal)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
            log.close()
            self._processes.remove((process, log))


def ask_to_stop(process: subprocess.Popen, stop_signal: int) -> None:
    """`stop_signal` on POSIX; on Windows `Popen.send_signal` knows only SIGTERM and console
    events (which reach the whole console), so the process is terminated."""
    if WINDOWS:
        process.terminate()
    else:
        process.send_signal(stop_signal)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
