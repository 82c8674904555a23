"""Alerts end to end: a real Prefect server and worker, the fake Numerai API, and a loopback
webhook receiver standing in for Slack/Teams. Each incident must reach it exactly once."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest
from prefect.client.orchestration import get_client

from numerflow.ops.alerts import RUN_FAILED
from tests.fake_numerai import FakeNumerai, daily_scores
from tests.prefect_stack import POOL, PrefectStack, project_config

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("on_real_prefect")]
SECRET = "S3CRET-alerts-5e1f"
PUBLIC = "PUB-alerts-77c0"
# alerts.yaml's missed-round delay here: the shortest it takes (0.5 min), long enough for a healthy
# round run to upload in (so a successful run sends nothing), short enough to watch it pass.
MISSED_ROUND_S = 30
# How long after an incident's message a duplicate would have come: the hooks send before the
# command exits, the server's automations within a second or two of the run's last state.
QUIET_S = 5


class Receiver:
    """Records every POST body with its arrival time."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, dict]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                receiver.messages.append((time.time(), json.loads(self.rfile.read(length) or b"{}")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def since(self, moment: float) -> list[dict]:
        return [body for at, body in self.messages if at >= moment]

    def wait_for(self, moment: float, count: int, timeout: float) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.since(moment)) < count:
            time.sleep(0.25)
        return self.since(moment)

    def settled(self, moment: float, count: int, timeout: float = 30) -> list[dict]:
        """The messages since `moment`, once `count` came and then none for QUIET_S."""
        self.wait_for(moment, count, timeout)
        time.sleep(QUIET_S)
        return self.since(moment)

    def arrival(self, message: dict) -> float:
        return next(at for at, body in self.messages if body is message)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def env(
    tmp_path_factory: pytest.TempPathFactory, version_dir: Path, real_prefect: PrefectStack
) -> Iterator[dict]:
    receiver, fake = Receiver(), FakeNumerai(public_id=PUBLIC, secret_key=SECRET)
    fake.add_dataset_dir(version_dir)
    live = (version_dir / "live.parquet").read_bytes()
    for round_number in (1001, 1002, 1003):
        fake.round_files[("v5.2/live.parquet", round_number)] = live
    fake.start()
    try:
        project = tmp_path_factory.mktemp("alerts-project")
        config_dir = _config(project, fake)
        prefect = real_prefect
        prefect.cli(["numerflow", "setup", "credentials", "--block-name", "numerai-alerts", "--model",
                     f"my_model={fake.models['my_model']}"],
                    env={"NUMERAI_PUBLIC_ID": PUBLIC, "NUMERAI_SECRET_KEY": SECRET})  # fmt: skip
        prefect.cli(["numerflow", "setup", "credentials", "--block-name", "numerai-swapped"],
                    env={"NUMERAI_PUBLIC_ID": SECRET, "NUMERAI_SECRET_KEY": PUBLIC})  # fmt: skip
        prefect.cli(["numerflow", "setup", "alerts", "--config-dir", str(config_dir), "--url", receiver.url])
        prefect.cli(["numerflow", "setup", "--config-dir", str(config_dir)])
        started = time.time()
        weekly = prefect.cli(["numerflow", "run", "--config-dir", str(config_dir)])
        assert "(submitted, round 1001)" in weekly.stdout
        weekly_done = time.time()
        yield {"prefect": prefect, "config_dir": config_dir, "receiver": receiver, "fake": fake,
               "project": project, "weekly_started": started, "weekly_done": weekly_done}  # fmt: skip
    finally:
        fake.stop()
        receiver.stop()


def _config(project: Path, fake: FakeNumerai) -> Path:
    edits = {
        "training": {
            "data.dir": str(project / "data"), "data.era_stride": 1, "targets": ["target"],
            "folds.n_folds": 3, "folds.embargo_eras": 4, "work_dir": str(project / "runs"),
            "submission.path": str(project / "submission.csv"), "models": ["my_model"],
            "numerai.download": True, "numerai.upload": True, "numerai.api_url": fake.api_url,
            "numerai.credentials_block": "numerai-alerts", "numerai.read_timeout_s": 2,
            "numerai.retry_budget_s": 3,
        },
        "program_input_params": {"params.num_iterations": 40, "params.learning_rate": 0.1},
        "alerts": {"block": "custom-webhook/numerflow-test-alerts",
                   "missed_round_after_minutes": MISSED_ROUND_S / 60},
        "deployments": {"work_pool": POOL},
    }  # fmt: skip
    return project_config(project, edits)


def _text(message: dict) -> str:
    text = f"{message.get('subject')}\n{message.get('text')}"
    assert SECRET not in text and PUBLIC not in text  # no message holds a credential
    return text


def test_upload_that_keeps_failing_alerts_once_then_reports_the_missed_round(env: dict) -> None:
    fake, receiver = env["fake"], env["receiver"]
    fake.round_number = 1002
    fake.fail_next("submission_upload_auth", *[503] * 10_000)
    try:
        started = time.time()
        done = env["prefect"].cli(
            ["numerflow", "submit", "--config-dir", str(env["config_dir"])], check=False
        )
        assert done.returncode == 1 and "uploads given up" in done.stderr
        elapsed = time.time() - started
        # One given-up message within 45 s; then, with no upload accepted for MISSED_ROUND_S after
        # the round run started, one missed-round message; nothing else (no duplicate of either).
        messages = receiver.settled(started, 2, timeout=60)
        assert len(messages) == 2, [_text(m) for m in messages]
        given_up, missed = messages
        text = _text(given_up)
        assert "upload given up for my_model in round 1002" in text and "HTTP 503" in text
        # 45 s: the CLI's own start-up counts, and it took 30.2 s once on 2 loaded cores
        assert elapsed < 45 and receiver.arrival(given_up) - started < 45
        assert "missed round (round 1002, model my_model)" in _text(missed)
        assert receiver.arrival(missed) - started >= MISSED_ROUND_S
    finally:
        fake.faults.statuses.clear()
        fake.round_number = 1001


def test_auth_error_alerts_once_saying_the_credentials_are_invalid(env: dict) -> None:
    started = time.time()
    swapped = ["--set", "training.numerai.credentials_block=numerai-swapped"]
    done = env["prefect"].cli(
        ["numerflow", "submit", "--config-dir", str(env["config_dir"]), *swapped], check=False
    )
    assert done.returncode == 1
    messages = env["receiver"].settled(started, 1)
    assert len(messages) == 1
    text = _text(messages[0])
    assert "Failed" in text and "rejected the credentials" in text and "swapped" in text
    assert "/runs/flow-run/" in text


def test_the_flow_itself_alerts_when_the_server_would_not(env: dict) -> None:
    with get_client(sync_client=True) as client:
        [automation] = client.read_automations_by_name(RUN_FAILED)
        client.pause_automation(automation.id)
    try:
        started = time.time()
        swapped = ["--set", "training.numerai.credentials_block=numerai-swapped"]
        env["prefect"].cli(
            ["numerflow", "submit", "--config-dir", str(env["config_dir"]), *swapped], check=False
        )
        messages = env["receiver"].settled(started, 1)
        assert len(messages) == 1 and "rejected the credentials" in _text(messages[0])
    finally:
        with get_client(sync_client=True) as client:
            client.resume_automation(automation.id)


def test_a_killed_run_gives_a_crash_alert(env: dict) -> None:
    started = time.time()
    done = env["prefect"].cli(["prefect", "deployment", "run", "numerflow-weekly/weekly",
                               "--param", "n_estimators=3000", "--param", "dry_run=true"])  # fmt: skip
    run_id = done.stdout.split("UUID:")[1].split()[0].strip()
    cache = env["project"] / "runs" / "fold-cache"
    before = set(cache.glob("*/result.json"))
    deadline = time.monotonic() + 120
    pid = None
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            run = client.read_flow_run(run_id)
            if run.infrastructure_pid and (
                set(cache.glob("*/result.json")) - before or time.monotonic() > deadline - 60
            ):
                pid = int(run.infrastructure_pid)
                break
            time.sleep(0.5)
    assert pid is not None, "the run did not start training in time"
    psutil.Process(pid).kill()
    messages = env["receiver"].settled(started, 1)
    assert len(messages) == 1, [_text(m) for m in messages]
    assert "Crashed" in _text(messages[0]) and "weekly-" in _text(messages[0])
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(run_id).state.is_crashed()


def test_a_decayed_model_alerts_through_its_automation_once(env: dict) -> None:
    fake, receiver = env["fake"], env["receiver"]
    model_id = fake.models["my_model"]
    for number in range(970, 990):  # 20 resolved rounds, every one negative
        fake.scores.setdefault(model_id, []).extend(daily_scores(number, {"v2_corr20": -0.01}, days=20))
    try:
        started = time.time()
        env["prefect"].cli(["numerflow", "submit", "--config-dir", str(env["config_dir"])])  # 1001: skipped
        messages = receiver.settled(started, 1)
        assert len(messages) == 1, [_text(m) for m in messages]
        text = _text(messages[0])
        assert "live CORR of my_model decayed" in text and "negative in every one of the last 20" in text
        assert "rounds 970-989" in text and "mean -0.0100" in text
    finally:
        fake.scores.clear()


def test_a_successful_run_sends_nothing(env: dict) -> None:
    """The fixture's weekly run submitted round 1001 fine: no message about it, not even once its
    missed-round delay has passed (whatever the other tests of this module sent meanwhile)."""
    time.sleep(max(0.0, env["weekly_done"] + MISSED_ROUND_S + QUIET_S - time.time()))
    texts = [_text(body) for body in env["receiver"].since(env["weekly_started"])]
    assert not [t for t in texts if "1001" in t]
