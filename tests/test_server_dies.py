"""The Prefect server killed in the middle of a weekly run and started again on the same port and
database, as its supervisor (systemd, the Windows task) would: the run is marked Crashed by the
zombie automation, the owner gets one message once the server is back, and the next run completes.

Its own server (the session's must not be killed), worker, and loopback webhook receiver."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import psutil
import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from tests.conftest import IN_BACKGROUND, REPO_ROOT, outcome_alongside
from tests.prefect_stack import POOL, PrefectStack, project_config
from tests.test_alerts import Receiver

pytestmark = [pytest.mark.slow, pytest.mark.integration]

# Flow-run heartbeats every 30 s, Prefect's minimum (flows.heartbeat_frequency), and a zombie
# window that outlasts one missed beat: the server must be down longer than the window for the
# automation to act, so these two bound the test's time.
HEARTBEAT_S = 30
ZOMBIE_MINUTES = 0.75
# The restarted server holds the run's next state change this long instead of 15 minutes (see
# serve_with_lookback); it processes such held events every 5 s.
LOOKBACK_S = 10


def test_server_killed_mid_run_alerts_once_and_the_next_run_completes(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Mostly waiting (the outage, the zombie window, the alert): it runs in its own pytest process
    beside the suite (tests/conftest.py `alongside`), and here reads that run's outcome."""
    if os.environ.get(IN_BACKGROUND):
        _server_killed_mid_run(tmp_path, request.getfixturevalue("synth_root"))
    else:
        outcome_alongside(request)


def _server_killed_mid_run(tmp_path: Path, synth_root: Path) -> None:
    receiver = Receiver()
    home = tmp_path / "prefect"
    home.mkdir()
    stack = PrefectStack(home, REPO_ROOT)
    run_pid = None
    try:
        stack.start_server(LOOKBACK_S)
        stack.start_worker()
        project = tmp_path / "project"
        config_dir = _config(project, synth_root)
        stack.cli(["numerflow", "setup", "alerts", "--config-dir", str(config_dir), "--url", receiver.url])
        stack.cli(["numerflow", "setup", "--config-dir", str(config_dir)])
        started = time.time()
        run_id = _trigger(stack, n_estimators=3000)
        with temporary_settings(updates={PREFECT_API_URL: stack.url}):
            with get_client(sync_client=True) as client:
                run_pid = _pid_once_a_fold_is_trained(client, run_id, project / "runs" / "fold-cache")
            stack.kill_server()
            # Down for the zombie window: no heartbeat reached the server since at most one
            # interval before the kill, so the window has passed when it is back.
            time.sleep(ZOMBIE_MINUTES * 60)
            assert psutil.pid_exists(run_pid), "the run died while the server was down"
            stack.start_server(LOOKBACK_S)

            first = receiver.wait_for(started, 1, timeout=90)
            assert first, "no alert came after the server was back"
            # The run goes on from where it waited for the server, to Completed or to a Crashed
            # of its own at its next lease renewal (the guide describes both); not to wait for
            # either, kill it: the Crashed its worker then reports must not be a second message.
            with contextlib.suppress(psutil.NoSuchProcess):  # unless it has ended already
                psutil.Process(run_pid).kill()
            ended = time.monotonic()
            next_id = _trigger(stack, n_estimators=40)
            with get_client(sync_client=True) as client:
                next_run = _final(client, next_id, timeout=240)
                states = client.read_flow_run_states(run_id)
                run = client.read_flow_run(run_id)
            # One more zombie window, in which it would fire again for the killed run.
            time.sleep(max(0.0, ended + ZOMBIE_MINUTES * 60 + 10 - time.monotonic()))
    finally:
        if run_pid is not None and psutil.pid_exists(run_pid):
            psutil.Process(run_pid).kill()
        stack.stop()
        receiver.stop()

    assert next_run.state.is_completed(), next_run.state
    zombie = [
        s for s in states if s.is_crashed() and (s.message or "").startswith("no heartbeat for 0.75 min")
    ]
    assert zombie, [(s.name, s.message) for s in states]
    messages = receiver.since(started)
    texts = [f"{m.get('subject')}\n{m.get('text')}" for m in messages]
    assert len(messages) == 1, texts
    # The message names the state the automation set, not the one the run ended in.
    assert f"{run.name} Crashed" in texts[0] and "no heartbeat for 0.75 minutes" in texts[0], texts
    assert run.state.is_final(), run.state


def _config(project: Path, synth_root: Path) -> Path:
    edits = {
        "training": {
            "data.dir": str(synth_root), "data.era_stride": 1, "targets": ["target"],
            "folds.n_folds": 3, "folds.embargo_eras": 4, "work_dir": str(project / "runs"),
            "submission.path": str(project / "submission.csv"), "models": ["my_model"],
        },
        "program_input_params": {"params.learning_rate": 0.1},
        "alerts": {"block": "custom-webhook/numerflow-test-alerts", "zombie_after_minutes": ZOMBIE_MINUTES},
        "deployments": {"work_pool": POOL},
    }  # fmt: skip
    return project_config(project, edits)


def _trigger(stack: PrefectStack, n_estimators: int) -> str:
    """A weekly run of the deployment, as its schedule would start it, with heartbeats every
    HEARTBEAT_S (the deployment's environment says 60 s; this one replaces it)."""
    env = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_S)}
    done = stack.cli(["prefect", "deployment", "run", "numerflow-weekly/weekly",
                      "--param", f"n_estimators={n_estimators}", "--param", "dry_run=true",
                      "--job-variable", f"env={json.dumps(env)}"])  # fmt: skip
    return done.stdout.split("UUID:")[1].split()[0].strip()


def _pid_once_a_fold_is_trained(client, run_id: str, cache: Path) -> int:
    """The run's process, once its first fold model is in the fold cache: training is under way."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        run = client.read_flow_run(run_id)
        if run.infrastructure_pid and any(cache.glob("*/result.json")):
            return int(run.infrastructure_pid)
        assert not run.state.is_final(), run.state
        time.sleep(0.5)
    raise AssertionError("the run did not train a fold in 180 s")


def _final(client, run_id: str, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.read_flow_run(run_id)
        if run.state.is_final():
            return run
        time.sleep(1)
    raise AssertionError(f"run {run_id} did not end in {timeout} s: {run.state}")
