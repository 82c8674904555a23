"""Resume: finished folds are reused only under exactly the same inputs."""

from pathlib import Path

import pytest

from numerflow.config.models import LightGBMParams
from numerflow.train.device import FallbackStep
from numerflow.train.fit import fit_fold_on_ladder
from numerflow.train.foldcache import MARKER, FoldCache
from numerflow.train.folds import make_folds
from tests.conftest import prepare, rewrite_parquet

PARAMS = LightGBMParams(n_estimators=15, learning_rate=0.1)


@pytest.fixture
def setup(version_dir: Path, tmp_path: Path) -> dict:
    features = [f"feature_{i:04d}" for i in range(8)]
    prepared = prepare(version_dir, features, ["target"], PARAMS, tmp_path)
    return {
        "version_dir": version_dir,
        "features": features,
        "prepared": prepared,
        "folds": make_folds(prepared.eras, 3, 4),
        "tmp": tmp_path,
    }


def _run(setup: dict, name: str, params: LightGBMParams = PARAMS, fold_index: int = 0, prepared=None):
    return fit_fold_on_ladder(
        prepared or setup["prepared"],
        setup["folds"][fold_index],
        "target",
        [FallbackStep(name="cpu", params=params)],
        seed=1,
        models_dir=setup["tmp"] / name / "models",
        cache=FoldCache(setup["tmp"] / "fold-cache"),
    )


def test_same_inputs_reuse_the_fold(setup: dict) -> None:
    first = _run(setup, "run1")
    second = _run(setup, "run2")
    assert not first.reused and second.reused
    assert second.model_path == setup["tmp"] / "run2" / "models" / "target" / "fold_0.txt"
    assert second.model_path.read_bytes() == first.model_path.read_bytes()
    assert second.oof_path.read_bytes() == first.oof_path.read_bytes()
    assert second.train_rows == first.train_rows


def test_anything_different_is_trained_afresh(setup: dict) -> None:
    _run(setup, "run1")
    assert not _run(setup, "params", params=PARAMS.model_copy(update={"num_iterations": 16})).reused
    assert not _run(setup, "fold", fold_index=1).reused
    other_data = rewrite_parquet(  # same features, other targets
        setup["version_dir"] / "train.parquet",
        setup["tmp"] / "other" / "train.parquet",
        lambda frame: frame.assign(target=frame["target"].to_numpy()[::-1]),
    )
    other = prepare(
        setup["version_dir"], setup["features"], ["target"], PARAMS, setup["tmp"] / "o", path=other_data
    )
    assert other.fingerprint != setup["prepared"].fingerprint
    assert not _run(setup, "data", prepared=other).reused


def test_an_incomplete_entry_is_never_used(setup: dict) -> None:
    _run(setup, "run1")
    [entry] = (setup["tmp"] / "fold-cache").iterdir()
    (entry / MARKER).unlink()  # as if the process died while storing
    assert not _run(setup, "run2").reused


def test_prune_removes_old_entries(setup: dict) -> None:
    _run(setup, "run1")
    cache = FoldCache(setup["tmp"] / "fold-cache")
    assert cache.prune(keep_days=1) == 0
    assert cache.prune(keep_days=-1) == 1 and not any(cache.root.iterdir())
