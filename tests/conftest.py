"""Shared fixtures. Prefect runs offline and against one test server for the whole session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

# Before Prefect is imported anywhere: no telemetry, and a private PREFECT_HOME.
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="numerflow-prefect-home-"))
os.environ.pop("PREFECT_API_URL", None)

from numerflow.data.synth import SynthSpec, generate
from numerflow.train.prepare import bin_training_rows
from tests.prefect_stack import PrefectStack
from tests.simulate_windows import SERVER_FIXTURES

REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL_SPEC = SynthSpec(eras=120, rows_per_era=150, features=30, seed=7)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs the Prefect server is in the slow tier: `-m "not slow"` starts none."""
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset, written once per session; tests must not modify it."""
    root = tmp_path_factory.mktemp("synth")
    generate(root, SMALL_SPEC)
    return root


@pytest.fixture(scope="session")
def version_dir(synth_root: Path) -> Path:
    return synth_root / SMALL_SPEC.version


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A writable copy of the shipped config/ inside a temporary project root."""
    return copy_config(tmp_path)


def copy_config(root: Path) -> Path:
    target = root / "project" / "config"
    shutil.copytree(REPO_ROOT / "config", target)
    return target


@pytest.fixture
def fast_overrides(synth_root: Path, tmp_path: Path) -> dict[str, object]:
    return overrides_for_speed(synth_root, tmp_path)


def overrides_for_speed(synth_root: Path, root: Path) -> dict[str, object]:
    """Point the shipped config at the small dataset and train few trees, for speed."""
    return {
        "training.data.dir": str(synth_root),
        "training.data.era_stride": 1,
        "training.work_dir": str(root / "runs"),
        "training.submission.path": str(root / "submission.csv"),
        "training.folds.n_folds": 3,
        "training.folds.embargo_eras": 4,
        "program_input_params.params.n_estimators": 60,
        "program_input_params.params.learning_rate": 0.1,
        "program_input_params.params.colsample_bytree": 0.5,
        "training.final_model": "none",  # the tests that check final models turn it on
    }


WINDOWS_RERUN = "tests/test_windows_simulated.py::test_the_server_free_tests_pass_without_posix_only_modules"


@pytest.fixture(scope="session", autouse=True)
def windows_rerun(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[subprocess.Popen[bytes], Path] | None]:
    """The server-free tests re-run under simulated Windows, started with the session when that test
    is selected: it keeps one core busy for about 100 s while the rest of the suite mostly waits on
    servers, so running it alongside saves that much wall time. It gets its own Prefect home and
    cache (the hosted runtime's lock is another kind of lock under the simulation) and no server."""
    if not any(item.nodeid == WINDOWS_RERUN for item in request.session.items):
        yield None
        return
    from tests.simulate_windows import rerun_command

    root = tmp_path_factory.mktemp("windows-rerun")
    cache = os.environ.get("NUMERFLOW_CACHE_DIR") or str(Path.home() / ".cache" / "numerflow")
    env = {"PREFECT_HOME": str(root / "prefect-home"), "NUMERFLOW_CACHE_DIR": cache + "-simulated-windows"}
    rerun = start_beside(rerun_command(root / "basetemp"), root, env)
    try:
        yield rerun
    finally:
        stop(rerun[0])


def start_beside(command: list[str], root: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    """`command` in the repository, beside this session, with `env` added and no PREFECT_API_URL
    (no session server): the process and the file its output goes to."""
    full_env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | env
    output = root / "output.txt"  # a file, not a pipe: a full pipe would stall the process
    with open(output, "wb") as out:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    return process, output


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


# Tests that mostly wait (a killed server's zombie window, an alert's delivery) run in a pytest
# process of their own, started with the session, so their waiting overlaps the rest of the suite;
# the test in this session then reads that run's outcome. IN_BACKGROUND marks the process itself.
ALONGSIDE = ("tests/test_server_dies.py::test_server_killed_mid_run_alerts_once_and_the_next_run_completes",)
IN_BACKGROUND = "NUMERFLOW_TEST_IN_BACKGROUND"


@pytest.fixture(scope="session", autouse=True)
def alongside(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[subprocess.Popen[bytes], Path]]]:
    """Each selected ALONGSIDE test started in its own pytest process (own temp folders, no
    PREFECT_API_URL), by test id: (the process, its output file)."""
    selected = {item.nodeid for item in request.session.items}
    started: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    if not os.environ.get(IN_BACKGROUND):
        for test in (t for t in ALONGSIDE if t in selected):
            root = tmp_path_factory.mktemp("alongside")
            command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp",
                       str(root / "basetemp"), test]  # fmt: skip
            started[test] = start_beside(command, root, {IN_BACKGROUND: "1"})
    try:
        yield started
    finally:
        for process, _ in started.values():
            stop(process)


def outcome_alongside(request: pytest.FixtureRequest, timeout_s: float = 900) -> None:
    """In the session: wait for this test's own process (see `alongside`) and fail with its output
    unless it passed."""
    process, output = request.getfixturevalue("alongside")[request.node.nodeid]
    process.wait(timeout=timeout_s)
    text = output.read_text(errors="replace")
    assert process.returncode == 0 and "1 passed" in text, text[-6000:]


@pytest.fixture(scope="session")
def real_prefect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectStack]:
    """The run's one Prefect server: `prefect server start` (SQLite in a temp dir) and a process
    worker on 127.0.0.1, started by the first test that needs a server and stopped at the end.
    This process's client points at it from then on, as `prefect_test_harness` would point it at
    its own server (a second server cost every run its start-up and its background services)."""
    from prefect.context import _temporary_global_settings_context, get_settings_context
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_DATABASE_CONNECTION_URL, temporary_settings

    stack = PrefectStack(tmp_path_factory.mktemp("prefect-stack"), REPO_ROOT)
    # The database is named here too, so that tests can read the file the server writes.
    pointed = {PREFECT_API_URL: stack.url, PREFECT_SERVER_DATABASE_CONNECTION_URL: stack.database_url}
    try:
        stack.start()
        with temporary_settings(updates=pointed), _temporary_global_settings_context(get_settings_context()):
            try:
                yield stack
            finally:
                _drain_prefect_workers()
    finally:
        stack.stop()


def _drain_prefect_workers() -> None:
    """Send the logs and events still queued before the server stops (as Prefect's harness does)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all()
    EventsWorker.drain_all()


@pytest.fixture(scope="session")
def prefect_server(real_prefect: PrefectStack) -> None:
    """Flows run in this process against the run's one server."""


@pytest.fixture(scope="session")
def on_real_prefect(real_prefect: PrefectStack) -> None:
    """Tests that drive the server and worker through subprocesses (`real_prefect.cli`)."""


@pytest.fixture
def no_opencl_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Child processes find no OpenCL driver, as on a machine without one, even on a GPU box."""
    hide_opencl_drivers(tmp_path, monkeypatch)


def hide_opencl_drivers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LightGBM's built-in ICD loader reads the drivers to load from OCL_ICD_FILENAMES and from the
    folder OCL_ICD_VENDORS names, else /etc/OpenCL/vendors (the Khronos OpenCL-ICD-Loader's README),
    once per process: children started from now on see none."""
    empty = tmp_path / "no-opencl-vendors"
    empty.mkdir()
    monkeypatch.setenv("OCL_ICD_VENDORS", str(empty))
    monkeypatch.delenv("OCL_ICD_FILENAMES", raising=False)


def opencl_driver_registered() -> bool:
    """Does this machine register an OpenCL driver for LightGBM's loader (a GPU box: NVIDIA's)?"""
    if os.environ.get("OCL_ICD_FILENAMES"):
        return True
    if sys.platform == "win32":
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"SOFTWARE\Khronos\OpenCL\Vendors") as key:
                return winreg.QueryInfoKey(key)[1] > 0
        except OSError:
            return False
    return any(Path(os.environ.get("OCL_ICD_VENDORS") or "/etc/OpenCL/vendors").glob("*.icd"))


def rewrite_parquet(source: Path, target: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Path:
    """A copy of a Numerai parquet file with `change` applied, keeping its row groups."""
    target.parent.mkdir(parents=True, exist_ok=True)
    parquet = pq.ParquetFile(source)
    frame = change(parquet.read().to_pandas())
    table = pa.Table.from_pandas(frame, preserve_index=True)
    pq.write_table(table, target, row_group_size=parquet.metadata.row_group(0).num_rows)
    return target


def prepare(version_dir: Path, features: list[str], targets: list[str], params, directory: Path, **options):
    """Prepared rows of the synthetic train.parquet (or `path=`), bins cached in `directory`."""
    path = options.pop("path", version_dir / "train.parquet")
    return bin_training_rows(
        path, features, targets, params, directory / "prepared", bins_dir=directory / "bins", **options
    )
