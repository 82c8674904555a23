import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from numerflow.config.models import FeaturesConfig
from numerflow.data.files import DataError, read_live, read_training, read_validation, select_features


@pytest.fixture(scope="module")
def small_features(version_dir: Path) -> list[str]:
    return json.loads((version_dir / "features.json").read_text())["feature_sets"]["small"]


def test_reads_only_what_is_asked_as_int8(version_dir: Path, small_features: list[str]) -> None:
    frame = read_training(version_dir / "train.parquet", small_features, ["target"])
    assert frame.features.dtype == np.int8 and frame.features.flags.f_contiguous
    assert frame.features.shape == (len(frame), len(small_features))
    assert list(frame.targets.columns) == ["target"]
    reference = pd.read_parquet(version_dir / "train.parquet", columns=small_features)
    np.testing.assert_array_equal(frame.features, reference.to_numpy())


def test_every_nth_era_anchored_on_the_newest(version_dir: Path, small_features: list[str]) -> None:
    all_eras = np.unique(read_training(version_dir / "train.parquet", small_features, ["target"]).eras)
    frame = read_training(version_dir / "train.parquet", small_features, ["target"], era_stride=4)
    kept = np.unique(frame.eras)
    assert kept[-1] == all_eras[-1]
    assert set(np.diff(kept)) == {4}
    assert len(kept) == len(all_eras[::-1][::4])


def test_row_limit_keeps_whole_newest_eras(version_dir: Path, small_features: list[str]) -> None:
    frame = read_training(version_dir / "train.parquet", small_features, ["target"], row_limit=500)
    counts = pd.Series(frame.eras).value_counts()
    assert len(frame) <= 500 and (counts == 150).all()  # 150 rows per era, none cut
    everything = read_training(version_dir / "train.parquet", small_features, ["target"])
    assert frame.eras.max() == everything.eras.max()


def test_feature_selection(version_dir: Path) -> None:
    meta = json.loads((version_dir / "features.json").read_text())
    assert (
        select_features(meta, FeaturesConfig(feature_set="medium", max_features=5))
        == (meta["feature_sets"]["medium"][:5])
    )
    explicit = FeaturesConfig(feature_set=None, features=["feature_0003", "feature_0001"])
    assert select_features(meta, explicit) == ["feature_0003", "feature_0001"]
    with pytest.raises(DataError, match=r"feature_set: 'huge' is not in features.json"):
        select_features(meta, FeaturesConfig(feature_set="huge"))
    with pytest.raises(DataError, match="not in the dataset"):
        select_features(meta, FeaturesConfig(feature_set=None, features=["feature_9999"]))


def test_validation_respects_embargo_and_labels(version_dir: Path, small_features: list[str]) -> None:
    frame = read_validation(
        version_dir / "validation.parquet", small_features, ["target"], last_train_era=90, embargo=8
    )
    assert frame.eras.min() == 99  # 91..98 embargoed
    assert frame.targets["target"].notna().all()


def test_live_and_missing_columns(version_dir: Path, small_features: list[str]) -> None:
    live = read_live(version_dir / "live.parquet", small_features)
    assert len(live) == 150 and live.features.dtype == np.int8
    with pytest.raises(DataError, match=r"live.parquet: missing columns \['feature_9999'\]"):
        read_live(version_dir / "live.parquet", ["feature_9999"])
    with pytest.raises(DataError, match="not found"):
        read_live(version_dir / "nothing.parquet", small_features)


def test_missing_feature_values_become_two(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"era": ["0001", "0001"], "feature_a": [1.0, np.nan], "target": [0.5, 0.25]},
        index=pd.Index(["n1", "n2"], name="id"),
    )
    frame.to_parquet(tmp_path / "train.parquet")
    loaded = read_training(tmp_path / "train.parquet", ["feature_a"], ["target"])
    assert loaded.features[:, 0].tolist() == [1, 2]


def test_corrupt_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "train.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="not a readable parquet file"):
        read_training(tmp_path / "train.parquet", ["feature_a"], ["target"])
