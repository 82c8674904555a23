"""Models written and read by Python (numerflow.train.model_files), in LightGBM's text format."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np

from numerflow.train.model_files import load_booster, save_booster


def _booster() -> tuple[lgb.Booster, np.ndarray]:
    rng = np.random.default_rng(0)
    features = rng.integers(0, 5, size=(300, 4)).astype(np.float32)
    label = features[:, 0] / 4 + rng.normal(0, 0.1, 300)
    params = {"objective": "regression", "verbose": -1, "num_leaves": 4}
    return lgb.train(params, lgb.Dataset(features, label=label), num_boost_round=5), features


def test_a_model_round_trips_through_a_folder_with_an_accented_name(tmp_path: Path) -> None:
    booster, features = _booster()
    path = save_booster(tmp_path / "Frédéric" / "fold_0.txt", booster)
    assert path.read_text(encoding="utf-8").startswith("tree\n")
    np.testing.assert_array_equal(load_booster(path).predict(features), booster.predict(features))


def test_the_file_is_lightgbms_own_text_format_both_ways(tmp_path: Path) -> None:
    booster, features = _booster()
    ours, theirs = tmp_path / "ours.txt", tmp_path / "theirs.txt"
    save_booster(ours, booster)
    booster.save_model(str(theirs))
    expected = booster.predict(features)
    np.testing.assert_array_equal(lgb.Booster(model_file=str(ours)).predict(features), expected)
    np.testing.assert_array_equal(load_booster(theirs).predict(features), expected)
