"""Crash-consistent records and full disks: a torn ledger line never hides a later record, and a
full disk at any write numerflow relies on gives an error naming the file and the free space,
keeps nothing half-written, and the next run succeeds once there is space."""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from numerflow.config.models import LightGBMParams
from numerflow.data import binned
from numerflow.io import DiskFullError, atomic_path, write_yaml_atomic
from numerflow.numerai import ledger
from numerflow.numerai.uploads import UploadRequest, upload_once
from numerflow.runs.folders import PLAN_FILE, start_run
from numerflow.runs.manifest import Manifest, read_manifest, write_manifest
from numerflow.train.foldcache import MARKER, FoldCache
from numerflow.train.model_files import save_booster
from tests.conftest import prepare
from tests.fake_numerai import FakeNumerai
from tests.full_disk import FullDisk
from tests.test_plan import _plan
from tests.test_uploads import ROUND, RUN_ID, client_for

NAMED_FULL = re.compile(r"the disk is full \([\d.]+ MiB free on .+\); nothing half-written was kept")


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> FullDisk:
    return FullDisk(monkeypatch)


def _fields(model: str, **extra: object) -> dict[str, object]:
    return {"round": ROUND, "model": model, "trained_run_id": RUN_ID, "sha256": "ab", "rows": 2, **extra}


@pytest.mark.parametrize(
    ("append", "read", "path_of"),
    [
        (lambda w, m: ledger.append(w, **_fields(m, submission_id=f"id-{m}")), ledger.entries,
         ledger.ledger_path),
        (lambda w, m: ledger.record_attempt(w, **_fields(m, step="put", result="ok")), ledger.attempts,
         ledger.attempts_path),
    ],
    ids=["ledger", "attempt-journal"],
)  # fmt: skip
def test_a_torn_last_line_is_ended_reported_once_and_hides_nothing(
    append: Callable, read: Callable, path_of: Callable, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    append(tmp_path, "a")
    whole = path_of(tmp_path).read_bytes()
    with open(path_of(tmp_path), "ab") as handle:  # a crash mid-append: half a record, no newline
        handle.write(whole[: len(whole) // 2])
    assert [r.model for r in read(tmp_path)] == ["a"]

    with caplog.at_level(logging.WARNING, logger="numerflow.numerai"):
        append(tmp_path, "b")
        append(tmp_path, "c")
    assert [r.model for r in read(tmp_path)] == ["a", "b", "c"]
    [warning] = [r.getMessage() for r in caplog.records if "cut short" in r.getMessage()]
    assert str(path_of(tmp_path)) in warning


@pytest.fixture
def two_models() -> Iterator[FakeNumerai]:
    server = FakeNumerai(models={"first": "11111111-0000-0000-0000-000000000001",
                                 "second": "11111111-0000-0000-0000-000000000002"}).start()  # fmt: skip
    yield server
    server.stop()


def test_a_full_disk_at_the_ledger_is_named_and_the_next_run_records_the_upload(
    two_models: FakeNumerai, full_disk: FullDisk, tmp_path: Path
) -> None:
    csv = tmp_path / "live.csv"
    csv.write_text("id,prediction\nn1,0.25\nn2,0.75\n")
    work = tmp_path / "runs"

    def upload(model: str):
        request = UploadRequest(ROUND, model, two_models.models[model], RUN_ID, csv, rows=2)
        return upload_once(client_for(two_models.api_url), work, request, False)

    assert upload("first").status == "uploaded"
    full_disk.at(ledger.LEDGER_NAME)
    with pytest.raises(DiskFullError, match=NAMED_FULL) as raised:
        upload("second")  # Numerai took it; the record of it was cut short
    assert str(ledger.ledger_path(work)) in str(raised.value)
    assert not ledger.ledger_path(work).read_bytes().endswith(b"\n")
    assert [e.model for e in ledger.entries(work)] == ["first"]

    full_disk.clear()  # space is back: the next trigger learns the upload from Numerai
    outcome = upload("second")
    [held] = two_models.submissions_for(ROUND, "second")
    assert outcome.status == "skipped" and outcome.submission_id == held["id"]
    assert [e.model for e in ledger.entries(work)] == ["first", "second"]
    assert len(two_models.submissions) == 2  # nothing uploaded twice


def _booster() -> lgb.Booster:
    rng = np.random.default_rng(0)
    data = lgb.Dataset(rng.integers(0, 5, (200, 3)).astype(np.float32), label=rng.random(200))
    return lgb.train({"verbose": -1, "num_leaves": 4}, data, num_boost_round=2)


def _manifest(version: int) -> Manifest:
    return Manifest(run_id=f"run-{version}", created_at="now", code_version="test", data={"version": "v5.2"},
                    features=["f"], targets=["t"], params={},
                    device={"choice": "cpu", "reason": "test", "device_type": "cpu"}, folds=[])  # fmt: skip


def _write_model(path: Path, version: int) -> None:
    save_booster(path, lgb.Booster(model_str=_booster().model_to_string(num_iteration=version)))


def _write_pickle(path: Path, version: int) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(pickle.dumps({"version": version}))


def _write_parquet(path: Path, version: int) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame({"stack": [float(version)] * 100}).to_parquet(tmp)


WRITERS: dict[str, tuple[str, Callable[[Path, int], object]]] = {
    "manifest": ("manifest.json", lambda p, v: write_manifest(p.parent, _manifest(v))),
    "run-file": ("run.yaml", lambda p, v: write_yaml_atomic(p, {"version": v})),
    "model": ("fold_0.txt", _write_model),
    "pickle": ("model.pkl", _write_pickle),
    "predictions": ("live_1001.parquet", _write_parquet),
}


@pytest.mark.parametrize("kind", WRITERS)
def test_a_full_disk_keeps_the_previous_complete_file(kind: str, full_disk: FullDisk, tmp_path: Path) -> None:
    name, write = WRITERS[kind]
    target = tmp_path / "run" / name
    write(target, 1)
    before = target.read_bytes()

    full_disk.at(name)
    with pytest.raises(DiskFullError, match=NAMED_FULL) as raised:
        write(target, 2)
    assert str(raised.value).startswith(f"{target}:")
    assert full_disk.failures  # the injected failure was hit, not skipped
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == [name]  # no temporary file left

    full_disk.clear()
    write(target, 2)
    assert target.read_bytes() != before
    if kind == "manifest":
        assert read_manifest(target.parent).run_id == "run-2"


def test_a_full_disk_while_binning_keeps_no_entry_and_the_next_run_builds(
    version_dir: Path, full_disk: FullDisk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = LightGBMParams(n_estimators=5, num_threads=1)
    features = [f"feature_{i:04d}" for i in range(8)]
    bins = tmp_path / "bins"
    full_disk.at(binned.RECORD_FILE)
    with pytest.raises(DiskFullError, match=NAMED_FULL):
        prepare(version_dir, features, ["target"], params, tmp_path)
    assert [p for p in bins.iterdir() if not p.name.endswith(".lock")] == []  # no entry, no staging
    full_disk.clear()

    # LightGBM's save_binary reports no failed write: a disk left full after it must not be trusted.
    real = binned.shutil.disk_usage
    monkeypatch.setattr(binned.shutil, "disk_usage", lambda p: real(p)._replace(free=0))
    with pytest.raises(DiskFullError, match=r"train\.bin: the disk is full \(0\.0 MiB free"):
        prepare(version_dir, features, ["target"], params, tmp_path)
    assert [p for p in bins.iterdir() if not p.name.endswith(".lock")] == []
    monkeypatch.undo()

    built = prepare(version_dir, features, ["target"], params, tmp_path)
    assert built.bins.built and built.dataset_path.is_file()


def test_a_full_disk_while_caching_a_fold_keeps_no_entry(full_disk: FullDisk, tmp_path: Path) -> None:
    model, oof = tmp_path / "fold_0.txt", tmp_path / "fold_0_oof.parquet"
    model.write_text("model " * 1000)
    oof.write_bytes(b"oof" * 1000)
    cache = FoldCache(tmp_path / "fold-cache")
    full_disk.at("model.txt")
    with pytest.raises(DiskFullError, match=NAMED_FULL):
        cache.store("k", model, oof, {"fold": 0})
    assert cache.lookup("k") is None and not (cache.root / "k").exists()

    full_disk.clear()
    cache.store("k", model, oof, {"fold": 0})
    assert cache.lookup("k") == {"fold": 0} and (cache.root / "k" / MARKER).is_file()
    assert (cache.root / "k" / "model.txt").read_bytes() == model.read_bytes()


def test_a_full_disk_at_the_run_plan_is_named_and_the_next_run_starts(
    config_dir: Path, synth_root: Path, full_disk: FullDisk
) -> None:
    plan = _plan(config_dir, synth_root)
    full_disk.at(PLAN_FILE)
    with pytest.raises(DiskFullError, match=NAMED_FULL) as raised:
        start_run(plan)
    assert PLAN_FILE in str(raised.value) and not list(plan.work_dir.glob(f"*/.{PLAN_FILE}.*"))
    full_disk.clear()
    paths = start_run(plan)
    assert (paths.run_dir / PLAN_FILE).is_file()
