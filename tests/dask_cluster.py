"""A real Dask cluster on 127.0.0.1 for tests: a scheduler and worker processes, no nanny (so a
killed worker stays dead), one thread each, stopped by whoever starts it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from distributed import Client

from tests.prefect_stack import _free_port

DASK = Path(sys.executable).parent / "dask"


class DaskCluster:
    def __init__(self, logs: Path, cwd: Path, api_url: str) -> None:
        self.logs, self.cwd = logs, cwd
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        self.env = {
            **os.environ,
            "PREFECT_API_URL": api_url,  # task runs on the workers report to the same server
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        self.workers: dict[str, subprocess.Popen] = {}
        self._processes: list[tuple[subprocess.Popen, object]] = []

    def start(self, workers: dict[str, dict[str, float]]) -> DaskCluster:
        """Start the scheduler and one worker per name, with the given Dask resources."""
        port = self.address.rsplit(":", 1)[1]
        self._spawn("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"])
        for name, resources in workers.items():
            args = ["worker", self.address, "--name", name, "--nthreads", "1", "--no-nanny", "--no-dashboard"]
            if resources:
                args += ["--resources", " ".join(f"{k}={v}" for k, v in resources.items())]
            self.workers[name] = self._spawn(name, args)
        with Client(self.address, timeout=60) as client:
            if workers:
                client.wait_for_workers(len(workers), timeout=90)
        return self

    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.workers.items()}

    def kill(self, name: str) -> None:
        """SIGKILL one worker, as a machine that loses power would."""
        self.workers[name].kill()
        self.workers[name].wait(10)

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.logs / f"dask-{name}.log", "w")  # noqa: SIM115 - closed in stop()
        process = subprocess.Popen([DASK, *args], env=self.env, cwd=self.cwd,
                                   stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        self._processes.append((process, log))
        time.sleep(0.5 if name == "scheduler" else 0)
        return process

    def stop(self) -> None:
        for process, log in reversed(self._processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
            log.close()
        self._processes.clear()
