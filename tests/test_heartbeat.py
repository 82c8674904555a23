"""The external heartbeat: pings at start, success and failure reach a loopback monitor with the
healthchecks.io paths and no secret, and a monitor that refuses connections never fails a run."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from flows.submit import submit_flow
from flows.weekly import weekly_flow
from numerflow.config import load_config
from numerflow.config.models import HeartbeatConfig
from numerflow.numerai.blocks import NumeraiCredentials
from numerflow.ops.heartbeat import heartbeat_status, ping, reason_text
from numerflow.ops.status_report import heartbeat_lines
from tests.fake_numerai import FakeNumerai
from tests.processes import free_port

SECRET = "S3CRET-heartbeat-0b7e"
PUBLIC = "PUB-heartbeat-41d2"


class Monitor:
    """A loopback healthchecks.io stand-in: records each ping's method, path and body."""

    def __init__(self) -> None:
        self.pings: list[tuple[str, str, str]] = []
        monitor = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                monitor.pings.append(("POST", self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.pings]


@pytest.fixture
def monitor() -> Iterator[Monitor]:
    server = Monitor()
    yield server
    server.server.shutdown()
    server.server.server_close()


def refused_url() -> str:
    return f"http://127.0.0.1:{free_port()}/check"  # nothing listens there


def test_pings_use_the_healthchecks_paths_and_record_the_last_success(
    monitor: Monitor, tmp_path: Path
) -> None:
    config = HeartbeatConfig(round=f"{monitor.base}/r-key", weekly=None, timeout_s=2)
    assert ping(config, "round", "start", tmp_path)
    assert ping(config, "round", "success", tmp_path)
    assert ping(config, "round", "fail", tmp_path, reason="run x Failed: boom")
    assert not ping(config, "weekly", "start", tmp_path)  # not set: nothing sent
    assert monitor.paths() == ["/r-key/start", "/r-key", "/r-key/fail"]
    assert monitor.pings[2][2] == "run x Failed: boom"
    status = heartbeat_status(config, tmp_path)
    assert status["round"]["set"] and status["round"]["last_success"] is not None
    assert status["round"]["last_error"] is None
    assert status["weekly"] == {"set": False, "host": None, "last_success": None, "last_error": None}


def test_a_refused_ping_is_recorded_and_never_raises(tmp_path: Path) -> None:
    config = HeartbeatConfig(round=refused_url(), timeout_s=2)
    assert not ping(config, "round", "success", tmp_path)
    status = heartbeat_status(config, tmp_path)["round"]
    assert status["last_success"] is None and "ConnectError" in status["last_error"]
    assert "/check" not in status["last_error"]  # the URL's path is the check's key
    lines = heartbeat_lines(heartbeat_status(config, tmp_path))
    assert lines[0].startswith("heartbeat:    round -> 127.0.0.1, last success ping never; last ping FAILED")
    assert (
        lines[1] == "heartbeat:    weekly not set (alerts.yaml heartbeat.weekly: no alarm outside this box)"
    )


def test_the_failure_reason_drops_url_queries_and_is_short() -> None:
    signed = f"upload to https://bucket.example/file.csv?X-Amz-Signature={SECRET}&X-Amz-Credential=k failed"
    assert reason_text(signed) == "upload to https://bucket.example/file.csv failed"
    assert len(reason_text("x" * 10_000)) == 500


def test_setup_alerts_writes_the_ping_urls_into_alerts_yaml(config_dir: Path) -> None:
    runner = CliRunner()
    args = ["setup", "alerts", "--config-dir", str(config_dir)]
    done = runner.invoke(app, [*args, "--heartbeat-round", "https://hc-ping.com/r1", "--heartbeat-weekly",
                               "https://hc-ping.com/w1"])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "changed:   alerts.yaml heartbeat.round" in done.output
    heartbeat = load_config(config_dir, {}).alerts.heartbeat
    assert (heartbeat.round, heartbeat.weekly) == ("https://hc-ping.com/r1", "https://hc-ping.com/w1")
    assert "# the check for the per-round runs" in (config_dir / "alerts.yaml").read_text()
    again = runner.invoke(app, [*args, "--heartbeat-round", "https://hc-ping.com/r1"])
    assert "unchanged: alerts.yaml heartbeat.round" in again.output
    bad = runner.invoke(app, [*args, "--heartbeat-weekly", "https://hc-ping.com/w1?key=1"])
    assert bad.exit_code == 2 and "--heartbeat-weekly" in bad.output
    assert load_config(config_dir, {}).alerts.heartbeat.weekly == "https://hc-ping.com/w1"


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_flows_ping_start_success_and_fail_and_a_dead_monitor_fails_nothing(
    monitor: Monitor, config_dir: Path, fast_overrides: dict, version_dir: Path
) -> None:
    work_dir = Path(fast_overrides["training.work_dir"])
    stale = work_dir / "20000101T000000Z-0a0b0c"  # a run that never finished, long ago
    stale.mkdir(parents=True)
    weekly = weekly_flow(
        config_dir=str(config_dir),
        overrides=fast_overrides | {"alerts.heartbeat.weekly": f"{monitor.base}/w-key"},
        return_state=True,
    )
    assert weekly.is_completed(), weekly.message
    assert monitor.paths() == ["/w-key/start", "/w-key"]
    assert not stale.exists()  # retention ran at the end of the weekly run

    # the monitor refuses connections: the round run still completes (a dry run offline)
    dead = fast_overrides | {"alerts.heartbeat.round": refused_url()}
    state = submit_flow(config_dir=str(config_dir), overrides=dead, dry_run=True, return_state=True)
    assert state.is_completed(), state.message
    assert "ConnectError" in heartbeat_status(load_config(config_dir, dead).alerts.heartbeat, work_dir)[
        "round"]["last_error"]  # fmt: skip

    # a round run whose credentials are refused: start, then fail with the reason and no secret
    fake = FakeNumerai(public_id="other", secret_key="other").start()
    try:
        NumeraiCredentials(public_id=PUBLIC, secret_key=SECRET, model_ids=fake.models).save(
            "heartbeat-test", overwrite=True
        )
        failing = fast_overrides | {
            "alerts.heartbeat.round": f"{monitor.base}/r-key",
            "training.numerai.download": True,
            "training.numerai.upload": True,
            "training.numerai.api_url": fake.api_url,
            "training.numerai.credentials_block": "heartbeat-test",
            "training.numerai.retry_budget_s": 0,
            "training.models": ["my_model"],
        }
        state = submit_flow(config_dir=str(config_dir), overrides=failing, return_state=True)
    finally:
        fake.stop()
    assert state.is_failed()
    assert monitor.paths()[2:] == ["/r-key/start", "/r-key/fail"]
    reason = monitor.pings[-1][2]
    assert reason.startswith("round-") or "Failed" in reason
    assert state.message[:40] in reason
    assert all(SECRET not in body and PUBLIC not in body for _, _, body in monitor.pings)
