"""A real Prefect server and process worker on 127.0.0.1 for tests, stopped by whoever starts them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
POOL = "numerflow-test"


class PrefectStack:
    def __init__(self, home: Path, cwd: Path) -> None:
        self.home, self.cwd = home, cwd
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": self.url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "2",
        }
        self.env.pop("PREFECT_SERVER_DATABASE_CONNECTION_URL", None)
        self._processes: list[tuple[subprocess.Popen, object]] = []

    def start(self) -> PrefectStack:
        self._spawn(
            "server",
            ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port), "--no-ui"],
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self._processes[0][0].poll() is None, "prefect server exited"
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise TimeoutError("prefect server did not become healthy in 90 s")
        self._spawn(
            "worker", ["prefect", "worker", "start", "--pool", POOL, "--limit", "1", "--name", "test-worker"]
        )
        return self

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.home / f"{name}.log", "w")  # noqa: SIM115 - closed in stop()
        process = subprocess.Popen([BIN / args[0], *args[1:]], env=self.env, cwd=self.cwd,
                                   stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        self._processes.append((process, log))

    def stop(self) -> None:
        """Worker first: a worker whose server is already gone can hang on shutdown."""
        for process, log in reversed(self._processes):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
            log.close()
        self._processes.clear()

    def cli(self, args: list[str], check: bool = True, env: dict | None = None, timeout: float = 240):
        done = subprocess.run([BIN / args[0], *args[1:]], env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip
        if check:
            assert done.returncode == 0, done.stdout + done.stderr
        return done


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def project_config(project: Path, edits: dict[str, dict[str, object]]) -> Path:
    """A copy of the shipped config/ under `project`, with {file: {dotted.key: value}} applied."""
    import shutil

    import yaml

    config_dir = project / "config"
    shutil.copytree(Path(__file__).resolve().parents[1] / "config", config_dir)
    for name, changes in edits.items():
        path = config_dir / f"{name}.yaml"
        data = yaml.safe_load(path.read_text())
        for dotted, value in changes.items():
            node = data
            *parents, last = dotted.split(".")
            for part in parents:
                node = node[part]
            node[last] = value
        path.write_text(yaml.safe_dump(data))
    return config_dir
