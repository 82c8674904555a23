"""Deployments end to end: a real `prefect server start` on 127.0.0.1, `numerflow setup`, a real
process worker, runs with overrides, a bad override, schedules, and resume after a kill."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psutil
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
)

from numerflow.runs.manifest import read_manifest
from tests.prefect_stack import POOL, PrefectStack, project_config

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("on_real_prefect")]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, synth_root: Path, real_prefect: PrefectStack) -> dict:
    project = tmp_path_factory.mktemp("project")
    config_dir = _project_config(project, synth_root)
    first = real_prefect.cli(["numerflow", "setup", "--config-dir", str(config_dir)])
    return {"prefect": real_prefect, "config_dir": config_dir, "project": project, "setup": first.stdout}


def _project_config(project: Path, synth_root: Path) -> Path:
    return project_config(project, {
        "training": {
            "data.dir": str(synth_root), "data.version": "v5.2", "data.era_stride": 1,
            "targets": ["target"], "folds.n_folds": 4, "folds.embargo_eras": 4,
            "work_dir": str(project / "runs"), "submission.path": str(project / "submission.csv"),
        },
        "program_input_params": {"params.num_iterations": 60, "params.learning_rate": 0.1},
        "deployments": {"work_pool": POOL, "weekly.timezone": "America/New_York"},
    })  # fmt: skip


def _run_deployment(stack: dict, *params: str) -> str:
    args = ["prefect", "deployment", "run", "numerflow-weekly/weekly"]
    for param in params:
        args += ["--param", param]
    done = stack["prefect"].cli(args)
    return done.stdout.split("UUID:")[1].split()[0].strip()


def _wait_final(run_id: str, timeout: float = 150) -> object:
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            run = client.read_flow_run(run_id)
            if run.state is not None and run.state.is_final():
                return run
            time.sleep(1)
    raise TimeoutError(f"flow run {run_id} did not finish in {timeout} s")


def test_setup_prints_next_runs_and_no_serve_warning(stack: dict) -> None:
    first = stack["setup"]
    # created, or updated when the alert tests (same server) deployed another project's first
    assert re.search(r"changed: +deployment numerflow-weekly/weekly (created|updated)", first)
    assert ".serve" not in first and "process work pool" not in first
    next_runs = first.split("Next scheduled runs:")[1].split("Start the worker")[0]
    assert re.search(r"numerflow-weekly/weekly +Sun \d{4}-\d\d-\d\d \d\d:00 UTC \(in ", next_runs)
    assert re.search(r"numerflow-submit/round +(Tue|Wed|Thu|Fri|Sat) \d{4}-\d\d-\d\d 12:05 UTC", next_runs)


def test_setup_twice_changes_nothing(stack: dict) -> None:
    with get_client(sync_client=True) as client:
        before = {d.name: (d.id, d.updated, d.version) for d in client.read_deployments()}
    second = stack["prefect"].cli(["numerflow", "setup", "--config-dir", str(stack["config_dir"])])
    assert not [line for line in second.stdout.splitlines() if line.startswith("changed:")]
    assert second.stdout.count("unchanged:") == 4
    assert f"/numerflow worker --config-dir {stack['config_dir']}" in second.stdout
    with get_client(sync_client=True) as client:
        after = {d.name: (d.id, d.updated, d.version) for d in client.read_deployments()}
        pools = [p.name for p in client.read_work_pools()]
    assert after == before and set(after) == {"weekly", "round"}
    assert pools.count(POOL) == 1


def test_schedules_fall_on_the_intended_days_hours_and_zone(stack: dict) -> None:
    with get_client(sync_client=True) as client:
        deployments = {d.name: d for d in client.read_deployments()}
        runs = {
            name: client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[d.id])), limit=20
            )
            for name, d in deployments.items()
        }
    weekly = [r.expected_start_time for r in runs["weekly"] if r.state.is_scheduled()]
    rounds = [r.expected_start_time for r in runs["round"] if r.state.is_scheduled()]
    assert len(weekly) >= 3 and len(rounds) >= 3
    new_york = [t.astimezone(ZoneInfo("America/New_York")) for t in weekly]
    assert {(t.weekday(), t.hour, t.minute) for t in new_york} == {(6, 16, 0)}  # Sunday 16:00 New York
    utc = [t.astimezone(ZoneInfo("UTC")) for t in rounds]
    assert {(t.hour, t.minute) for t in utc} == {(12, 5)} and {t.weekday() for t in utc} <= {1, 2, 3, 4, 5}
    assert all(t > datetime.now(ZoneInfo("UTC")) for t in weekly + rounds)
    job_env = deployments["weekly"].job_variables["env"]
    assert job_env["CUDA_VISIBLE_DEVICES"] == "0"
    assert deployments["weekly"].global_concurrency_limit.limit == 1


def test_bad_override_is_refused_before_a_run_starts(stack: dict) -> None:
    with get_client(sync_client=True) as client:  # counted, not listed: the server holds every module's runs
        count = client.count_flow_runs()
    done = stack["prefect"].cli(
        ["prefect", "deployment", "run", "numerflow-weekly/weekly", "--param", "n_folds=50"], check=False
    )
    assert done.returncode != 0
    assert "Validation failed for field 'n_folds'" in " ".join((done.stdout + done.stderr).split())
    with get_client(sync_client=True) as client:
        assert client.count_flow_runs() == count


def test_run_with_overrides_completes_with_artifacts(stack: dict) -> None:
    run_id = _run_deployment(stack, "n_folds=3", "n_estimators=40", "dry_run=true")
    run = _wait_final(run_id)
    assert run.state.is_completed(), run.state.message
    assert run.parameters["n_folds"] == 3 and run.parameters["n_estimators"] == 40
    assert re.fullmatch(r"weekly-\d{4}-\d\d-\d\d-v5\.2-[0-9a-f]{8}", run.name) and "weekly" in run.tags
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id]))
        )
        ids = [run.id, *(c.id for c in children)]
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids))
        )
    assert sorted(c.name for c in children) == [f"{run.name}-folds-3-fits-local", f"{run.name}-submission"]
    assert {a.key for a in artifacts} >= {
        "numerflow-run-summary", "numerflow-metrics", "numerflow-fold-metrics",
        "numerflow-validation-era-corr", "numerflow-oof-era-corr", "numerflow-submissions",
    }  # fmt: skip
    summary = next(a for a in artifacts if a.key == "numerflow-run-summary")
    assert "`training.folds.n_folds=3`" in summary.data and "- models: `" in summary.data
    manifest = read_manifest(_latest_run_dir(stack))
    assert manifest.params["num_iterations"] == 40 and len(manifest.folds) == 3


def test_killed_run_resumes_without_retraining_finished_folds(stack: dict) -> None:
    cache = stack["project"] / "runs" / "fold-cache"
    before = {p.parent.name for p in cache.glob("*/result.json")}
    run_id = _run_deployment(stack, "n_estimators=1500", "learning_rate=0.01", "dry_run=true")
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        finished = {p.parent.name for p in cache.glob("*/result.json")} - before
        if finished:
            break
        time.sleep(0.1)
    assert finished, "no fold finished in time"
    with get_client(sync_client=True) as client:
        pid = int(client.read_flow_run(run_id).infrastructure_pid)
    psutil.Process(pid).kill()  # the flow's process dies mid-training, as in a crash
    time.sleep(1)
    finished = {p.parent.name for p in cache.glob("*/result.json")} - before
    assert 1 <= len(finished) < 4

    rerun = _wait_final(
        _run_deployment(stack, "n_estimators=1500", "learning_rate=0.01", "dry_run=true"), 240
    )
    assert rerun.state.is_completed(), rerun.state.message
    manifest = read_manifest(_latest_run_dir(stack))
    reused = [r for r in manifest.fold_results if r["reused"]]
    trained = [r for r in manifest.fold_results if not r["reused"]]
    assert len(reused) == len(finished) and len(trained) == 4 - len(finished)


def _latest_run_dir(stack: dict) -> Path:
    """The default slot's folder in the newest run."""
    runs = stack["project"] / "runs"
    return runs / (runs / "LATEST").read_text().strip() / "slots" / "main"


def _status(stack: dict) -> tuple[int, dict]:
    done = stack["prefect"].cli(["numerflow", "status", "--json", "--config-dir", str(stack["config_dir"])],
                                check=False)  # fmt: skip
    return done.returncode, json.loads(done.stdout)


def _wait_worker_online(stack: dict, online: bool, timeout: float = 60) -> tuple[int, dict]:
    deadline = time.monotonic() + timeout
    while True:
        code, status = _status(stack)
        if any(w["online"] for w in status["work_pool"]["workers"]) == online or time.monotonic() > deadline:
            return code, status
        time.sleep(2)


@pytest.mark.skipif(sys.platform == "win32", reason="starts the printed command with /bin/sh, SIGINT ignored")
def test_printed_worker_takes_a_run_and_status_follows_it(stack: dict, tmp_path: Path) -> None:
    prefect = stack["prefect"]
    config_dir = stack["config_dir"]
    alerts = prefect.cli(["numerflow", "setup", "alerts", "--url", "http://127.0.0.1:9/hook",
                          "--config-dir", str(config_dir)])  # fmt: skip
    assert "changed:   alerts.yaml block: custom-webhook/numerflow-alerts" in alerts.stdout
    printed = prefect.cli(["numerflow", "setup", "--config-dir", str(config_dir)]).stdout
    command = printed.split("Start the worker")[1].splitlines()[1].strip()
    assert command.startswith(f"PREFECT_API_URL={prefect.url} ")

    prefect.stop_worker()  # only the printed worker may take the run
    env = {k: v for k, v in prefect.env.items() if k != "PREFECT_API_URL"}  # the command sets it
    env |= {"PREFECT_WORKER_HEARTBEAT_SECONDS": "2", "PATH": "/usr/bin:/bin"}
    log = tmp_path / "printed-worker.log"
    ignore_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731
    with open(log, "w") as out:  # started as a script starts it in the background: SIGINT ignored
        worker = subprocess.Popen(["/bin/sh", "-c", f"exec env {command}"], cwd=tmp_path, env=env,
                                  stdout=out, stderr=subprocess.STDOUT, preexec_fn=ignore_sigint)  # fmt: skip
    try:
        code, status = _wait_worker_online(stack, online=True)
        assert code == 0, status["problems"]
        assert status["credentials"] == {"block": "numerai", "present": False, "models": [], "needed": False}
        assert set(status["alerts"]["automations"].values()) == {"enabled"}
        assert status["work_pool"]["concurrency_limit"] == 1

        run = _wait_final(_run_deployment(stack, "n_folds=2", "n_estimators=20", "data_version=latest",
                                          "dry_run=true"), 240)  # fmt: skip
        assert run.state.is_completed(), run.state.message
        assert re.fullmatch(r"weekly-\d{4}-\d\d-\d\d-v5\.2-[0-9a-f]{8}", run.name)  # latest, resolved
        assert str(run.id) in log.read_text()  # the printed worker took it

        no_block = 'overrides={"training.numerai.download": true}'  # needs the (missing) credentials
        done = prefect.cli(["prefect", "deployment", "run", "numerflow-submit/round",
                            "--param", "dry_run=true", "--param", no_block])  # fmt: skip
        failed = _wait_final(done.stdout.split("UUID:")[1].split()[0].strip())
        assert failed.state.is_failed()
        assert "`uv run numerflow setup credentials --block-name numerai`" in failed.state.message
        # One traceback at most (Prefect's engine logs one for any failed top-level run), not
        # one per flow level: the worker's log so far holds only this failure's.
        assert log.read_text().count("Traceback") <= 1

        started = time.monotonic()
        worker.terminate()  # SIGTERM, as systemd or a shell's kill sends it
        worker.wait(30)
        assert time.monotonic() - started < 15
        code, status = _wait_worker_online(stack, online=False)
        assert code == 1 and any("no worker online" in p for p in status["problems"])
        _, latest = _status(stack)
        assert latest["latest_weekly_run"]["name"] == run.name
    finally:
        if worker.poll() is None:
            worker.kill()
        prefect.start_worker()
