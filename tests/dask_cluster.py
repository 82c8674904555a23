"""A real Dask cluster on 127.0.0.1 for tests: a scheduler and worker processes, no nanny (so a
killed worker stays dead), one thread each, stopped by whoever starts it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from distributed import Client

from tests.processes import ProcessGroup, free_port


class DaskCluster:
    def __init__(self, logs: Path, cwd: Path, api_url: str) -> None:
        self.address = f"tcp://127.0.0.1:{free_port()}"
        env = {
            **os.environ,
            "PREFECT_API_URL": api_url,  # task runs on the workers report to the same server
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        self._group = ProcessGroup(logs, cwd, env, stop_signal=signal.SIGTERM)
        self.workers: dict[str, subprocess.Popen] = {}

    def start(self, workers: dict[str, dict[str, float]]) -> DaskCluster:
        """Start the scheduler and one worker per name, with the given Dask resources."""
        port = self.address.rsplit(":", 1)[1]
        self._group.spawn(
            "dask-scheduler", ["dask", "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"]
        )
        time.sleep(0.5)
        for name, resources in workers.items():
            args = [
                "dask",
                "worker",
                self.address,
                "--name",
                name,
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
            ]
            if resources:
                args += ["--resources", " ".join(f"{k}={v}" for k, v in resources.items())]
            self.workers[name] = self._group.spawn(f"dask-{name}", args)
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

    def stop(self) -> None:
        self._group.stop()
