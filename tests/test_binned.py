"""The lean data path: both loaders bin the same rows identically, and bins are built once."""

import os
import shutil
import threading
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
import yaml

import numerflow.train.prepare
from numerflow.config import load_config
from numerflow.config.models import LightGBMParams
from numerflow.data.binned import BINS_FILE, BinsCache
from numerflow.data.files import read_training
from numerflow.data.rows import FeatureRows, SelectedRows
from numerflow.train.fit import fit_fold
from numerflow.train.folds import make_folds
from numerflow.train.prepare import ensure_bins
from tests.conftest import prepare, rewrite_parquet

PARAMS = LightGBMParams(num_iterations=20, learning_rate=0.1, feature_fraction=0.5, num_threads=2)
FEATURES = [f"feature_{i:04d}" for i in range(12)]


@pytest.fixture
def with_gaps(version_dir: Path, tmp_path: Path) -> Path:
    """train.parquet with missing feature values, which Numerai fills with 2."""

    def blank(frame):
        frame = frame.copy()
        frame["feature_0001"] = frame["feature_0001"].astype("float32")
        frame.loc[frame.index[::7], "feature_0001"] = np.nan
        return frame

    return rewrite_parquet(version_dir / "train.parquet", tmp_path / "gaps" / "train.parquet", blank)


def test_feature_rows_serve_the_selected_rows_in_file_order(version_dir: Path) -> None:
    path = version_dir / "train.parquet"
    eras = list(range(3, 100, 5))
    expected = read_training(path, FEATURES, ["target"], era_stride=1)
    keep = np.isin(expected.eras, eras)
    rows = FeatureRows(SelectedRows(path, eras), FEATURES)
    assert len(rows) == int(keep.sum())
    assert np.array_equal(np.concatenate(list(rows.blocks())), expected.features[keep])
    wanted = expected.features[keep]
    boundary = int(rows.rows.starts[1])  # the first row of the second row group
    assert np.array_equal(rows[boundary - 3 : boundary + 4], wanted[boundary - 3 : boundary + 4])
    assert rows[boundary - 3 : boundary + 4].dtype == np.float32
    assert np.array_equal(rows[-1], wanted[-1]) and rows[5].dtype == np.float64
    with pytest.raises(IndexError):
        rows[len(rows)]


def test_both_loaders_bin_identically_and_train_the_same_model(with_gaps: Path, tmp_path: Path) -> None:
    models = {}
    for loader in ("arrow", "stream"):
        prepared = prepare(
            Path(), FEATURES, ["target"], PARAMS, tmp_path / loader, path=with_gaps, loader=loader
        )
        assert prepared.bins.built and prepared.bins.record.loader == loader
        fold = make_folds(prepared.eras, 3, 4)[1]
        result = fit_fold(prepared, fold, "target", PARAMS, seed=3, models_dir=tmp_path / loader / "models")
        models[loader] = (prepared.bins.record.digest, result.model_path.read_text().split("parameters:")[0])
    assert models["arrow"] == models["stream"]

    # Missing values were binned as 2, as the in-memory reader fills them.
    frame = read_training(with_gaps, FEATURES, ["target"])
    booster = lgb.Booster(model_file=str(result.model_path))
    rows = FeatureRows(SelectedRows(with_gaps), FEATURES)
    assert np.allclose(booster.predict(rows[0 : len(rows)]), booster.predict(frame.features))


def test_a_k_fold_run_bins_once_and_a_later_run_not_at_all(
    version_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = []
    real_build = numerflow.train.prepare.build_dataset

    def counting_build(*args, **kwargs):
        builds.append(kwargs.get("loader", args[-1]))
        return real_build(*args, **kwargs)

    monkeypatch.setattr(numerflow.train.prepare, "build_dataset", counting_build)
    prepared = prepare(version_dir, FEATURES, ["target", "target_cyrusd_20"], PARAMS, tmp_path / "one")
    for target in prepared.targets:
        for fold in make_folds(prepared.eras, 4, 2):
            fit_fold(prepared, fold, target, PARAMS, seed=1, models_dir=tmp_path / "one" / "models")
    assert len(builds) == 1 and prepared.bins.built

    again = prepare(version_dir, FEATURES, ["target", "target_cyrusd_20"], PARAMS, tmp_path / "one")
    assert len(builds) == 1 and not again.bins.built and again.bins.plan.loader == "cached"
    assert again.dataset_path == prepared.dataset_path and again.fingerprint == prepared.fingerprint


def test_a_corrupt_cache_entry_is_rebuilt_not_used(version_dir: Path, tmp_path: Path) -> None:
    first = prepare(version_dir, FEATURES, ["target"], PARAMS, tmp_path)
    original = first.dataset_path.read_bytes()
    with open(first.dataset_path, "r+b") as handle:  # flip one byte in the middle
        handle.seek(len(original) // 2)
        handle.write(bytes([original[len(original) // 2] ^ 0xFF]))
    second = prepare(version_dir, FEATURES, ["target"], PARAMS, tmp_path)
    assert second.bins.built and second.dataset_path.read_bytes() == original

    (second.dataset_path.parent / "bins.json").write_text("{not json")
    assert prepare(version_dir, FEATURES, ["target"], PARAMS, tmp_path).bins.built


def test_anything_that_shapes_the_bins_gets_its_own_entry(version_dir: Path, tmp_path: Path) -> None:
    own = rewrite_parquet(version_dir / "train.parquet", tmp_path / "data" / "train.parquet", lambda f: f)
    base = prepare(version_dir, FEATURES, ["target"], PARAMS, tmp_path, path=own)
    rewrite_parquet(  # a new version of the same file: one feature value differs
        own,
        own,
        lambda frame: frame.assign(
            feature_0000=np.where(np.arange(len(frame)) == 0, 4, frame["feature_0000"])
        ),
    )
    variants = [
        prepare(version_dir, FEATURES, ["target"], PARAMS, tmp_path, path=own),
        prepare(version_dir, FEATURES[:-1], ["target"], PARAMS, tmp_path),
        prepare(version_dir, FEATURES, ["target"], PARAMS, tmp_path, eras=list(range(1, 60))),
        prepare(version_dir, FEATURES, ["target"], PARAMS.model_copy(update={"max_bin": 15}), tmp_path),
    ]
    assert all(v.bins.built for v in variants)
    keys = {base.bins.record.key, *(v.bins.record.key for v in variants)}
    assert len(keys) == 5
    # The targets are not part of the bins (each fold sets its own label).
    assert not prepare(
        version_dir, FEATURES, ["target", "target_cyrusd_20"], PARAMS, tmp_path, path=own
    ).bins.built


def test_concurrent_builders_of_one_key_build_it_once(tmp_path: Path) -> None:
    cache = BinsCache(tmp_path / "bins")
    calls = []

    def slow_build(out: Path) -> tuple[int, int, str]:
        calls.append(threading.get_ident())
        time.sleep(0.3)
        out.write_bytes(b"binned")
        return 1, 1, "stream"

    outcomes = []
    threads = [
        threading.Thread(target=lambda: outcomes.append(cache.get_or_build("k", slow_build)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert sorted(built for _, built in outcomes) == [False, False, True]
    assert [p.name for p in (tmp_path / "bins").iterdir() if p.is_dir()] == ["k"]
    assert (tmp_path / "bins" / "k" / BINS_FILE).read_bytes() == b"binned"


def test_a_failed_build_leaves_no_entry(tmp_path: Path) -> None:
    cache = BinsCache(tmp_path / "bins")

    def failing_build(out: Path) -> tuple[int, int, str]:
        out.write_bytes(b"half")
        raise MemoryError("killed halfway")

    with pytest.raises(MemoryError):
        cache.get_or_build("k", failing_build)
    assert cache.lookup("k") is None
    assert not [p for p in (tmp_path / "bins").iterdir() if p.is_dir()]


def test_a_machine_without_the_bins_builds_them_itself(version_dir: Path, tmp_path: Path) -> None:
    """What a Dask worker does when its disk lacks the run's bins (or holds a damaged copy)."""
    prepared = prepare(version_dir, FEATURES, ["target"], PARAMS, tmp_path)
    original = prepared.dataset_path.read_bytes()
    assert not ensure_bins(prepared)  # present: nothing to do

    shutil.rmtree(prepared.dataset_path.parent)
    assert ensure_bins(prepared) and prepared.dataset_path.read_bytes() == original
    prepared.dataset_path.write_bytes(original[:100])  # truncated
    assert ensure_bins(prepared) and prepared.dataset_path.read_bytes() == original
    fold = make_folds(prepared.eras, 3, 4)[0]
    assert fit_fold(prepared, fold, "target", PARAMS, seed=1, models_dir=tmp_path / "models").train_rows > 0


def test_prune_removes_unused_entries_and_dead_builds(version_dir: Path, tmp_path: Path) -> None:
    prepared = prepare(version_dir, FEATURES, ["target"], PARAMS, tmp_path)
    cache = BinsCache(tmp_path / "bins")
    dead = cache.root / ".somekey.dead.tmp"  # a build killed half-way, two days ago
    dead.mkdir()
    two_days_ago = time.time() - 2 * 86_400
    os.utime(dead, (two_days_ago, two_days_ago))
    assert cache.prune() == 1 and not dead.exists() and prepared.dataset_path.is_file()
    assert cache.prune(keep_days=-1) == 1
    assert not [p for p in cache.root.iterdir() if p.is_dir()]


def _file_params(config_dir: Path) -> LightGBMParams:
    return load_config(config_dir, {"params.num_iterations": 10, "params.num_threads": 2}).effective_params()


def test_a_dataset_key_in_the_parameter_file_rebins_once_then_reuses(
    config_dir: Path, version_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = []
    real_build = numerflow.train.prepare.build_dataset

    def counting_build(*args, **kwargs):
        builds.append(args)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(numerflow.train.prepare, "build_dataset", counting_build)

    def prepared_with(**params: object):
        path = config_dir / "program_input_params.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["params"].update(params)
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return prepare(
            version_dir, FEATURES, ["target"], load_config(config_dir).effective_params(), tmp_path
        )

    base = prepared_with()
    assert len(builds) == 1
    # min_data_in_bin shapes the bins (LightGBM's Dataset keeps it); lambda_l2 does not.
    rebinned = prepared_with(min_data_in_bin=40)
    assert len(builds) == 2 and rebinned.bins.built and rebinned.dataset_params["min_data_in_bin"] == 40
    assert rebinned.bins.record.key != base.bins.record.key
    again = prepared_with(min_data_in_bin=40, lambda_l2=3.0)
    assert len(builds) == 2 and not again.bins.built and again.dataset_path == rebinned.dataset_path
    fold = make_folds(again.eras, 3, 4)[0]
    assert (
        fit_fold(
            again, fold, "target", _file_params(config_dir), seed=1, models_dir=tmp_path / "models"
        ).train_rows
        > 0
    )
