"""Shared fixtures. Prefect runs offline and against one test server for the whole session."""

from __future__ import annotations

import os
import shutil
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

REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL_SPEC = SynthSpec(eras=120, rows_per_era=150, features=30, seed=7)


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


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One real Prefect server (SQLite in a temp dir) for every integration test."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def real_prefect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """`prefect server start` and a process worker on 127.0.0.1, shared by the deployment and
    alert tests (they talk to it through subprocesses and `on_real_prefect`)."""
    from tests.prefect_stack import PrefectStack

    stack = PrefectStack(tmp_path_factory.mktemp("prefect-stack"), REPO_ROOT)
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture
def on_real_prefect(real_prefect: object) -> Iterator[None]:
    """Point this process's Prefect client at the real server for one test; set per test
    because the session's test harness may have pointed it elsewhere meanwhile."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: real_prefect.url}):
        yield


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
