"""The weekly flow on a real local Dask cluster: fold tasks run in the worker processes, give the
same models and scores as a local run, and survive losing a worker mid-run."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL

from flows.weekly import weekly_flow
from numerflow.runs.manifest import read_manifest
from tests.conftest import REPO_ROOT, copy_config, overrides_for_speed
from tests.dask_cluster import DaskCluster
from tests.processes import free_port

pytestmark = pytest.mark.usefixtures("prefect_server")

N_MODELS = 2 * 3  # targets x folds in fast_overrides


@pytest.fixture(scope="module")
def project(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("dask-project")
    # One LightGBM thread per task: the same arithmetic here and on the workers (bit-equal
    # models), and two one-thread workers fill this 2-core machine without oversubscribing it.
    overrides = {
        **overrides_for_speed(synth_root, root),
        "program_input_params.params.num_threads": 1,
        "program_input_params.params.n_estimators": 400,
    }
    return copy_config(root), overrides


@pytest.fixture(scope="module")
def local_run(
    project: tuple[Path, dict], prefect_server: None, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The reference: the same training run here, without Dask (shared by the tests below)."""
    config_dir, overrides = project
    state = weekly_flow(
        config_dir=str(config_dir),
        overrides={**overrides, "training.work_dir": str(tmp_path_factory.mktemp("local-runs"))},
        return_state=True,
    )
    assert state.is_completed(), state.message
    return state.result().run_dir


@contextmanager
def _cluster(tmp_path: Path, workers: dict[str, dict[str, float]]) -> Iterator[DaskCluster]:
    """A scheduler and the named workers (with their Dask resources), stopped afterwards."""
    logs = tmp_path / "dask-logs"
    logs.mkdir()
    cluster = DaskCluster(logs, REPO_ROOT, PREFECT_API_URL.value())
    try:
        yield cluster.start(workers)
    finally:
        cluster.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[DaskCluster]:
    with _cluster(tmp_path, {"worker-a": {}, "worker-b": {}}) as started:
        yield started


def _run_on_dask(cluster: DaskCluster, config_dir: Path, overrides: dict, work_dir: Path):
    return weekly_flow(
        config_dir=str(config_dir),
        overrides={**overrides, "training.work_dir": str(work_dir)},
        dask_address=cluster.address,
        return_state=True,
    )


def _trees(run_dir: Path) -> dict[str, str]:
    """Each model's trees (the text before LightGBM's parameter dump), by its path in the run."""
    manifest = read_manifest(run_dir / "slots" / "main")
    return {
        model: (run_dir / model).read_text().split("parameters:")[0]
        for paths in manifest.models.values()
        for model in paths
    }


def _assert_same_run(run_dir: Path, reference: Path) -> None:
    """Same models, tree for tree, and the same out-of-fold and validation scores."""
    assert _trees(run_dir) == _trees(reference)
    assert len(_trees(run_dir)) == N_MODELS
    ours = read_manifest(run_dir / "slots" / "main").metrics
    theirs = read_manifest(reference / "slots" / "main").metrics
    assert ours.summary.model_dump(mode="json") == theirs.summary.model_dump(mode="json")
    drop = {"seconds", "reused"}
    assert [{k: v for k, v in row.items() if k not in drop} for row in ours.per_fold] == [
        {k: v for k, v in row.items() if k not in drop} for row in theirs.per_fold
    ]


def test_fold_tasks_run_in_the_dask_workers_and_match_a_local_run(
    cluster: DaskCluster, local_run: Path, project: tuple[Path, dict], tmp_path: Path
) -> None:
    state = _run_on_dask(cluster, *project, tmp_path / "dask-runs")
    assert state.is_completed(), state.message
    run_dir = state.result().run_dir

    trained_in = {r["pid"] for r in read_manifest(run_dir / "slots" / "main").fold_results}
    assert trained_in == set(cluster.pids().values())  # both workers trained, nothing ran here
    assert {r["pid"] for r in read_manifest(local_run / "slots" / "main").fold_results} == {os.getpid()}
    _assert_same_run(run_dir, local_run)


def test_a_worker_killed_mid_run_still_ends_in_a_complete_correct_run(
    cluster: DaskCluster, local_run: Path, project: tuple[Path, dict], tmp_path: Path
) -> None:
    work_dir = tmp_path / "dask-runs"
    outcome: dict = {}
    flow = threading.Thread(target=lambda: outcome.update(state=_run_on_dask(cluster, *project, work_dir)))
    flow.start()
    deadline = time.monotonic() + 240
    while not list(work_dir.glob("*/models/*/*/fold_*.txt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    finished_before_kill = len(list(work_dir.glob("*/models/*/*/fold_*.txt")))
    assert 0 < finished_before_kill < N_MODELS, "the worker must die while folds are still training"
    cluster.kill("worker-b")
    flow.join(timeout=600)

    state = outcome["state"]
    assert state.is_completed(), state.message
    run_dir = state.result().run_dir
    results = read_manifest(run_dir / "slots" / "main").fold_results
    assert len(results) == N_MODELS
    # Work that was lost with worker-b ran again on worker-a; nothing is missing or different.
    assert cluster.pids()["worker-a"] in {r["pid"] for r in results}
    _assert_same_run(run_dir, local_run)


@pytest.fixture
def gpu_cluster(tmp_path: Path) -> Iterator[DaskCluster]:
    """One worker that declares a GPU resource, one that does not."""
    with _cluster(tmp_path, {"gpu-worker": {"GPU": 1}, "cpu-worker": {}}) as started:
        yield started


def test_tasks_that_hold_a_gpu_resource_run_only_on_gpu_workers(
    gpu_cluster: DaskCluster, config_dir: Path, fast_overrides: dict, tmp_path: Path
) -> None:
    overrides = {**fast_overrides, "training.scale_out.task_resources": {"GPU": 1}}
    state = _run_on_dask(gpu_cluster, config_dir, overrides, tmp_path / "dask-runs")
    assert state.is_completed(), state.message
    results = read_manifest(state.result().run_dir / "slots" / "main").fold_results
    assert len(results) == N_MODELS
    # One GPU resource on one worker: every task ran there, one at a time.
    assert {r["pid"] for r in results} == {gpu_cluster.pids()["gpu-worker"]}


def test_a_cluster_that_cannot_train_fails_before_any_work(
    config_dir: Path, fast_overrides: dict, tmp_path: Path
) -> None:
    with _cluster(tmp_path, {}) as empty:  # a scheduler, no workers
        for address, reason in [
            (empty.address, "the scheduler has no workers"),
            (f"tcp://127.0.0.1:{free_port()}", "no Dask scheduler answered"),
        ]:
            state = weekly_flow(
                config_dir=str(config_dir), overrides=fast_overrides, dask_address=address, return_state=True
            )
            assert state.is_failed()
            message = str(state.result(raise_on_failure=False))
            assert "training.scale_out.dask_address" in message and address in message and reason in message
            assert not Path(fast_overrides["training.work_dir"]).exists()  # nothing read, nothing written
