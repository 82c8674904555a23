import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from numerflow.data.reference_files import BENCHMARK_FILE, META_MODEL_COLUMN, META_MODEL_FILE
from numerflow.data.synth import SynthSpec, generate
from tests.conftest import SMALL_SPEC


def test_v5_schema(version_dir: Path) -> None:
    meta = json.loads((version_dir / "features.json").read_text())
    assert set(meta) == {"feature_sets", "targets"}
    features = meta["feature_sets"]["all"]
    assert {"small", "medium", "all"} <= set(meta["feature_sets"])
    assert set(meta["feature_sets"]["small"]) <= set(meta["feature_sets"]["medium"]) <= set(features)

    for name in ("train", "validation", "live"):
        frame = pd.read_parquet(version_dir / f"{name}.parquet")
        assert frame.index.name == "id" and frame.index.is_unique
        assert all(isinstance(i, str) and i.startswith("n") and len(i) == 16 for i in frame.index[:50])
        assert frame.columns[:2].tolist() == ["era", "data_type"]
        assert (frame[features].dtypes == np.int8).all()
        values = frame[features].to_numpy()
        assert values.min() == 0 and values.max() == 4
        assert set(meta["targets"]) <= set(frame.columns)
        assert meta["targets"][0] == "target"

    train = pd.read_parquet(version_dir / "train.parquet")
    assert train["era"].str.fullmatch(r"\d{4}").all()
    assert train["target"].notna().all()
    assert set(np.unique(train["target"])) == {0.0, 0.25, 0.5, 0.75, 1.0}
    aux = [t for t in meta["targets"] if t != "target"]
    assert train[aux].isna().any().any()  # auxiliary targets may be NaN
    assert any(t.endswith("_60") for t in aux) and any(t.endswith("_20") for t in aux)


def test_validation_has_unlabelled_eras_at_the_end(version_dir: Path) -> None:
    validation = pd.read_parquet(version_dir / "validation.parquet")
    train = pd.read_parquet(version_dir / "train.parquet", columns=["era"])
    assert validation["era"].min() > train["era"].max()
    labelled = validation[validation["data_type"] == "validation"]
    unlabelled = validation[validation["data_type"] != "validation"]
    assert labelled["target"].notna().all() and unlabelled["target"].isna().all()
    assert len(unlabelled) > 0 and unlabelled["era"].min() > labelled["era"].max()
    live = pd.read_parquet(version_dir / "live.parquet")
    assert (live["data_type"] == "live").all() and live["target"].isna().all()


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    spec = SynthSpec(eras=20, rows_per_era=30, features=12, seed=3)
    first = generate(tmp_path / "a", spec)
    second = generate(tmp_path / "b", spec)
    other = generate(tmp_path / "c", SynthSpec(eras=20, rows_per_era=30, features=12, seed=4))
    for name in ("train.parquet", "validation.parquet", "live.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(first / name), pd.read_parquet(second / name))
        assert not pd.read_parquet(first / name).equals(pd.read_parquet(other / name))
    assert (first / "features.json").read_text() == (second / "features.json").read_text()


def test_planted_signal_lives_in_the_small_set(version_dir: Path) -> None:
    meta = json.loads((version_dir / "features.json").read_text())
    informative = json.loads((version_dir / "synth_spec.json").read_text())["informative"]
    small = meta["feature_sets"]["small"]
    assert any(f"feature_{i:04d}" in small for i in informative)


def test_benchmark_and_meta_model_files_follow_the_planted_signal(version_dir: Path) -> None:
    validation = pd.read_parquet(version_dir / "validation.parquet", columns=["era", "target"])
    benchmarks = pd.read_parquet(version_dir / BENCHMARK_FILE)
    meta = pd.read_parquet(version_dir / META_MODEL_FILE)
    assert benchmarks.index.equals(validation.index)  # every validation row, like Numerai's file
    assert "v52_lgbm_ender20" in benchmarks.columns and "v52_lgbm_cyrusd60" in benchmarks.columns
    assert meta.columns.tolist() == ["era", "data_type", META_MODEL_COLUMN]
    assert meta["era"].astype(int).min() == SMALL_SPEC.meta_model_from_era  # recent eras only
    assert meta["era"].astype(int).max() == SMALL_SPEC.eras

    joined = validation.join(benchmarks["v52_lgbm_ender20"]).join(meta[META_MODEL_COLUMN]).dropna()
    corr = joined.drop(columns="era").corr(method="spearman")["target"]
    # both carry the target's signal; the meta model with less noise than the benchmark
    assert corr[META_MODEL_COLUMN] > corr["v52_lgbm_ender20"] > 0.05


def test_reference_files_are_optional(tmp_path: Path) -> None:
    directory = generate(tmp_path, SynthSpec(eras=20, rows_per_era=30, features=12, reference_files=False))
    assert not (directory / BENCHMARK_FILE).exists() and not (directory / META_MODEL_FILE).exists()


def test_bad_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="rows_per_era"):
        SynthSpec(rows_per_era=1)
