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
        self._server: subprocess.Popen | None = None

    def start(self) -> PrefectStack:
        self.start_server()
        self.start_worker()
        return self

    def start_server(self, preceding_event_lookback_s: float | None = None) -> None:
        """The server, on this stack's port and database (a restart finds both as they were);
        `preceding_event_lookback_s`: see `serve_with_lookback`."""
        command = ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port), "--no-ui"]
        if preceding_event_lookback_s is not None:
            code = "from tests.prefect_stack import serve_with_lookback as serve; serve({})"
            code = code.format(preceding_event_lookback_s)
            command = ["python", "-c", code, *command[1:]]
        # A restart logs to its own file, keeping the killed server's log.
        name = "server" if self._server is None else "server-restarted"
        self._server = server = self._group.spawn(name, command)
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

    def kill_server(self) -> None:
        """Kill the server outright, as the OOM killer or a crash would: no shutdown of any kind."""
        assert self._server is not None, "no server started"
        self._server.kill()
        self._server.wait(10)

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


def serve_with_lookback(seconds: float) -> None:
    """The `prefect` command line (this process's arguments), its server's triggers waiting at most
    `seconds` instead of 15 minutes for the event that a newly arrived event follows. A restarted
    server has forgotten which events it processed (Prefect keeps that in memory), so it holds a
    run's next state change for that long when the previous one was under 5 minutes earlier
    (PRECEDING_EVENT_LOOKBACK in prefect/server/events/ordering, which no setting changes); a
    test of a restart cannot wait 15 minutes for its alert."""
    import sys
    from datetime import timedelta

    import prefect.server.events.ordering as ordering
    import prefect.server.events.ordering.memory as memory
    import prefect.server.events.triggers as triggers
    from prefect.cli import app

    ordering.PRECEDING_EVENT_LOOKBACK = memory.PRECEDING_EVENT_LOOKBACK = (
        triggers.PRECEDING_EVENT_LOOKBACK
    ) = timedelta(seconds=seconds)
    sys.argv = ["prefect", *sys.argv[1:]]
    sys.exit(app())
