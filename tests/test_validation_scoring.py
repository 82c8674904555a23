"""Validation as Numerai judges it: every labelled era past the embargo, and MMC, BMC, FNC and
feature exposure from numerai-tools against the generator's meta-model and benchmark files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numerai_tools.scoring import correlation_contribution, feature_neutral_corr, max_feature_correlation

from numerflow.config import load_config
from numerflow.data.files import to_era_numbers
from numerflow.data.reference_files import BENCHMARK_FILE, META_MODEL_COLUMN, META_MODEL_FILE
from numerflow.data.rows import SelectedRows
from numerflow.runs.evaluation import scored_validation_eras
from numerflow.runs.plan import DataPlan, resolve_plan
from numerflow.score.metrics import per_era_contribution, per_era_feature_scores
from numerflow.score.results import MetricScores
from numerflow.score.validation import ValidationSet, numerai_metrics
from tests.conftest import SMALL_SPEC

LAST_TRAIN_ERA = SMALL_SPEC.train_eras
EMBARGO = 4


def _data_plan(config_dir: Path, synth_root: Path, **overrides: object) -> DataPlan:
    config = load_config(config_dir, {"training.data.dir": str(synth_root), **overrides})
    return resolve_plan(config, "v5.2").data  # device-free: as a CPU decision leaves it


@pytest.mark.parametrize("era_stride", [1, 4, 7])
def test_validation_scores_every_labelled_era_past_the_embargo(
    config_dir: Path, synth_root: Path, version_dir: Path, era_stride: int
) -> None:
    data = _data_plan(config_dir, synth_root, **{"training.data.era_stride": era_stride})
    validation = pd.read_parquet(version_dir / "validation.parquet", columns=["era", "data_type"])
    labelled = validation.loc[validation["data_type"] == "validation", "era"].astype(int).unique()
    expected = sorted(e for e in labelled if e > LAST_TRAIN_ERA + EMBARGO)
    assert scored_validation_eras(data, LAST_TRAIN_ERA, EMBARGO).tolist() == expected

    thinned = data.model_copy(update={"validation_era_stride": 3})  # its own stride still thins
    assert scored_validation_eras(thinned, LAST_TRAIN_ERA, EMBARGO).tolist() == expected[::-1][::3][::-1]


@pytest.fixture(scope="module")
def validation(version_dir: Path) -> ValidationSet:
    """Scored validation rows with three known predictions: the meta model itself, the reference
    benchmark itself, and an oracle (the target plus noise); one row in 7 left out as unlabelled."""
    path = version_dir / "validation.parquet"
    rows = SelectedRows(path, range(LAST_TRAIN_ERA + EMBARGO + 1, SMALL_SPEC.eras + 1))
    table = rows.table(["id", "era", "target"]).to_pandas(ignore_metadata=True).set_index("id")
    kept = table["target"].notna().to_numpy() & (np.arange(len(table)) % 7 != 3)
    table = table[kept]
    meta = pd.read_parquet(version_dir / META_MODEL_FILE)[META_MODEL_COLUMN]
    bench = pd.read_parquet(version_dir / BENCHMARK_FILE)["v52_lgbm_ender20"]
    noise = np.random.default_rng(0).normal(0, 0.3, len(table))
    predictions = pd.DataFrame(
        {
            "meta": meta.reindex(table.index).fillna(0.5),  # constant where it does not cover
            "bench": bench.reindex(table.index),
            "oracle": table["target"] + noise,
        }
    )
    return ValidationSet(
        rows=rows,
        features=[f"feature_{i:04d}" for i in range(SMALL_SPEC.features)],
        positions=np.flatnonzero(kept),
        predictions=predictions,
        target=table["target"],
        eras=to_era_numbers(path, table["era"].to_numpy()),
    )


def _metrics(
    validation: ValidationSet,
    version_dir: Path,
    benchmark: str = "v52_lgbm_ender20",
    feature_metrics_eras: int | None = None,
) -> dict[str, MetricScores]:
    return numerai_metrics(validation, version_dir, benchmark, feature_metrics_eras)


def test_mmc_and_bmc_are_numerai_tools_per_era_with_the_planted_signs(
    validation: ValidationSet, version_dir: Path
) -> None:
    metrics = _metrics(validation, version_dir)
    mmc, bmc = metrics["mmc"], metrics["bmc"]
    assert mmc.not_computed is None and bmc.not_computed is None

    # MMC only where the meta model covers the eras; BMC on every scored era
    meta_eras = [e for e in np.unique(validation.eras) if e >= SMALL_SPEC.meta_model_from_era]
    assert [int(row["era"]) for row in mmc.per_era] == meta_eras
    assert mmc.summary["oracle"].eras == len(meta_eras)
    assert bmc.summary["oracle"].eras == len(np.unique(validation.eras))

    era = meta_eras[2]
    rows = validation.eras == era
    meta = pd.read_parquet(version_dir / META_MODEL_FILE)[META_MODEL_COLUMN]
    direct = correlation_contribution(
        validation.predictions[rows],
        meta.reindex(validation.predictions.index[rows]),
        validation.target[rows],
    )
    ours = next(row for row in mmc.per_era if int(row["era"]) == era)
    assert ours["oracle"] == pytest.approx(direct["oracle"], abs=1e-6)

    # a model contributes nothing beyond itself; the meta model (less noise than the benchmark)
    # adds to the benchmark; knowing the target adds more to the weaker benchmark than to the meta model
    assert abs(mmc.summary["meta"].mean) < 1e-6 and abs(bmc.summary["bench"].mean) < 1e-6
    assert bmc.summary["meta"].mean > 0.02
    bmc_where_mmc = np.mean([row["oracle"] for row in bmc.per_era if int(row["era"]) in meta_eras])
    assert bmc_where_mmc > mmc.summary["oracle"].mean > 0.05


def test_fnc_and_exposure_are_numerai_tools_on_the_era_features(
    validation: ValidationSet, version_dir: Path
) -> None:
    era_features = dict(validation.era_features())
    assert sorted(era_features) == np.unique(validation.eras).tolist()
    era, uncovered = max(era_features), min(era_features)  # the meta model covers the newest eras only
    from_file = pd.read_parquet(version_dir / "validation.parquet", columns=validation.features)
    ids = validation.predictions.index[validation.eras == era]
    pd.testing.assert_frame_equal(era_features[era], from_file.loc[ids].astype(np.float32), check_names=False)

    fnc, exposure = per_era_feature_scores(
        validation.predictions, validation.target, [(e, era_features[e]) for e in (era, uncovered)]
    )
    # where "meta" is constant it has no FNC or exposure, and the other columns still do
    assert np.isnan(fnc.loc[uncovered, "meta"]) and np.isnan(exposure.loc[uncovered, "meta"])
    assert fnc.loc[uncovered, ["bench", "oracle"]].notna().all()
    features = era_features[era].sort_index()
    predictions = validation.predictions.loc[features.index]
    direct = feature_neutral_corr(predictions, features, validation.target.loc[ids])
    assert fnc.loc[era, "oracle"] == pytest.approx(direct["oracle"], abs=1e-9)
    assert exposure.loc[era, "meta"] == pytest.approx(
        max_feature_correlation(predictions["meta"], features)[1]
    )
    # the meta model is built on the informative features; the oracle's noise is not
    assert exposure.loc[era, "meta"] > 0.1


def test_without_the_files_mmc_and_bmc_say_why(
    validation: ValidationSet, version_dir: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "v5.2"
    bare.mkdir()
    shutil.copy(version_dir / "validation.parquet", bare / "validation.parquet")
    metrics = _metrics(validation, bare)
    for name, missing in (("mmc", META_MODEL_FILE), ("bmc", BENCHMARK_FILE)):
        assert metrics[name].summary == {} and metrics[name].per_era == []  # absent, never zeros
        assert metrics[name].not_computed.startswith(f"{missing} is not in {bare}")
    assert metrics["fnc"].not_computed is None and metrics["fnc"].summary  # needs no file

    elsewhere = pd.DataFrame({META_MODEL_COLUMN: [0.5]}, index=pd.Index(["n_not_scored"], name="id"))
    elsewhere.to_parquet(bare / META_MODEL_FILE)  # a meta model of other eras only
    assert "covers none of the scored validation rows" in _metrics(validation, bare)["mmc"].not_computed

    unknown = _metrics(validation, version_dir, "v52_lgbm_nobody20")["bmc"]
    assert "no column v52_lgbm_nobody20" in unknown.not_computed
    assert "v52_lgbm_ender20" in unknown.not_computed and "scoring.benchmark_model" in unknown.not_computed


def test_contribution_skips_rows_and_eras_the_reference_does_not_cover() -> None:
    ids = pd.Index([f"n{i:015x}" for i in range(40)])
    eras = np.repeat([1, 2], 20)
    target = pd.Series(np.tile(np.linspace(0, 1, 20), 2), index=ids)
    predictions = pd.DataFrame({"p": target + np.random.default_rng(1).normal(0, 0.1, 40)}, index=ids)
    reference = pd.Series(np.random.default_rng(2).random(20), index=ids[20:])  # era 2 only
    scores = per_era_contribution(predictions, reference, target, eras)
    assert scores.index.tolist() == [2]
    assert scores.loc[2, "p"] == pytest.approx(
        correlation_contribution(predictions[20:], reference, target[20:])["p"]
    )


def test_feature_metrics_cover_the_newest_eras_it_is_given(
    validation: ValidationSet, version_dir: Path
) -> None:
    metrics = _metrics(validation, version_dir, feature_metrics_eras=5)
    scored = np.unique(validation.eras).tolist()
    assert [int(row["era"]) for row in metrics["fnc"].per_era] == scored[-5:]
    assert metrics["feature_exposure"].summary["oracle"].eras == 5
    assert metrics["bmc"].summary["oracle"].eras == len(scored)  # contributions: every era
