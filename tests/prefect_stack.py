"""A real Prefect server and process worker on 127.0.0.1 for tests, stopped by whoever starts them."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx

from tests.processes import BIN, ProcessGroup, free_port

POOL = "numerflow-test"


class PrefectStack:
    def __init__(self, home: Path, cwd: Path) -> None:
        self.home, self.cwd = home, cwd
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.database_url = f"sqlite+aiosqlite:///{home / 'prefect.db'}"
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": self.url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": self.database_url,
        }
        self._group = ProcessGroup(home, cwd, self.env)

    def start(self) -> PrefectStack:
        self.start_server()
        self.start_worker()
        return self

    def start_server(self) -> None:
        server = self._group.spawn(
            "server",
            ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port), "--no-ui"],
        )
        deadline = time.monotonic() + 180  # a fresh database's migrations, on a busy machine
        while time.monotonic() < deadline:
            assert server.poll() is None, "prefect server exited"
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise TimeoutError("prefect server did not become healthy in 180 s")

    def start_worker(self) -> None:
        self._group.spawn(
            "worker", ["prefect", "worker", "start", "--pool", POOL, "--limit", "1", "--name", "test-worker"]
        )

    def stop_worker(self) -> None:
        self._group.stop("worker")

    def stop(self) -> None:
        self._group.stop()

    def cli(self, args: list[str], check: bool = True, env: dict | None = None, timeout: float = 240):
        done = subprocess.run([BIN / args[0], *args[1:]], env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip
        if check:
            assert done.returncode == 0, done.stdout + done.stderr
        return done


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
