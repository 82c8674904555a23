"""Fold training on the planted signal: a working model scores, one on shuffled targets does not."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from numerflow.config.models import LightGBMParams
from numerflow.data.files import read_training, read_validation
from numerflow.runs.evaluation import load_oof
from numerflow.score.metrics import per_era_corr, summarize
from numerflow.train.fit import fit_fold
from numerflow.train.folds import make_folds
from numerflow.train.predict import predict
from tests.conftest import prepare, rewrite_parquet

PARAMS = LightGBMParams(n_estimators=80, learning_rate=0.1, colsample_bytree=0.5, num_threads=2)
TARGETS = ["target", "target_shuffled_20"]


@pytest.fixture(scope="module")
def trained(version_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    run_dir = tmp_path_factory.mktemp("run")
    features = json.loads((version_dir / "features.json").read_text())["feature_sets"]["small"]
    # The shuffled target keeps each era's values but breaks their link to the features.
    rng = np.random.default_rng(0)

    def add_shuffled(frame: pd.DataFrame) -> pd.DataFrame:
        shuffled = frame.groupby("era")["target"].transform(lambda values: rng.permutation(values.to_numpy()))
        return frame.assign(target_shuffled_20=shuffled.astype(np.float32))

    path = rewrite_parquet(version_dir / "train.parquet", run_dir / "data" / "train.parquet", add_shuffled)
    frame = read_training(path, features, [*TARGETS, "target_cyrusd_20"])
    prepared = prepare(version_dir, features, TARGETS, PARAMS, run_dir, path=path)
    folds = make_folds(prepared.eras, n_folds=3, embargo=4)
    results = [
        fit_fold(prepared, fold, target, PARAMS, seed=1, models_dir=run_dir / "models")
        for target in TARGETS
        for fold in folds
    ]
    return {
        "frame": frame,
        "prepared": prepared,
        "folds": folds,
        "results": results,
        "features": features,
    }


def test_out_of_fold_rows_are_each_fold_block(trained: dict) -> None:
    frame, folds = trained["frame"], trained["folds"]
    oof = load_oof(trained["results"], TARGETS)
    assert oof.index.is_unique and len(oof) == len(frame)
    for fold in folds:
        rows = oof[oof["fold"] == fold.index]
        assert set(rows["era"]) == set(fold.validation_eras)
    for result in trained["results"]:
        assert result.model_path.is_file()
        train_eras = np.isin(frame.eras, trained["folds"][result.fold].train_eras)
        assert result.train_rows == int(train_eras.sum())


def test_rows_without_a_target_are_not_trained_on(trained: dict, tmp_path: Path) -> None:
    frame, fold = trained["frame"], trained["folds"][0]
    prepared = prepare(
        Path(),
        frame.feature_names,
        ["target", "target_cyrusd_20"],
        PARAMS,
        tmp_path,
        path=trained["prepared"].data_path,
    )
    result = fit_fold(prepared, fold, "target_cyrusd_20", PARAMS, seed=1, models_dir=tmp_path)
    in_train = np.isin(frame.eras, fold.train_eras)
    labelled = frame.targets["target_cyrusd_20"].notna().to_numpy()
    assert (in_train & ~labelled).any()  # the auxiliary target has NaNs in training eras
    assert result.train_rows == int((in_train & labelled).sum())


def test_planted_signal_scores_and_shuffled_targets_do_not(trained: dict, version_dir: Path) -> None:
    oof = load_oof(trained["results"], TARGETS)
    truth = pd.read_parquet(trained["prepared"].meta_path).set_index("id")["target"].reindex(oof.index)
    scores = per_era_corr(oof[TARGETS], truth, oof["era"].to_numpy())
    real, shuffled = summarize(scores["target"]), summarize(scores["target_shuffled_20"])
    assert real.mean > 0.05 and real.mean / (real.std / np.sqrt(real.eras)) > 4
    assert abs(shuffled.mean) < 0.03
    assert real.mean > shuffled.mean + 0.05

    validation = read_validation(
        version_dir / "validation.parquet",
        trained["features"],
        ["target"],
        last_train_era=max(trained["prepared"].eras),
        embargo=4,
    )
    models = {t: [r.model_path for r in trained["results"] if r.target == t] for t in TARGETS}
    predictions = predict(models, validation.features)
    predictions.index = validation.ids
    target = pd.Series(validation.targets["target"].to_numpy(), index=validation.ids)
    val_scores = per_era_corr(predictions, target, validation.eras).mean()
    assert val_scores["target"] > 0.05
    assert abs(val_scores["target_shuffled_20"]) < 0.04
