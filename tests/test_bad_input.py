"""Bad input gets an error naming the file and the fix, and loses nothing: no prediction or
submission file is written from it, and the process is never taken down by LightGBM."""

from __future__ import annotations

import shutil
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from numerflow.config import load_config
from numerflow.data.files import DataError, read_live, read_training
from numerflow.data.rows import FeatureRows, SelectedRows
from numerflow.ops.status import latest_training, problems
from numerflow.runs.manifest import ManifestError, TrainedRun, load_trained_run, mark_latest
from numerflow.runs.plan import select_slots
from numerflow.submit.file import SubmissionError, make_submission
from numerflow.submit.live import LivePredictions, predict_live
from numerflow.train.predict import ModelFileError
from tests.conftest import rewrite_parquet
from tests.test_plan import _plan

FEATURES = [f"feature_{i:04d}" for i in range(10)]
REFETCH = "delete it and run again: numerflow downloads it afresh"


@pytest.fixture(scope="module")
def model_file(version_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    train = read_training(version_dir / "train.parquet", FEATURES, ["target"])
    data = lgb.Dataset(train.features.astype(np.float32), label=train.targets["target"].to_numpy())
    path = tmp_path_factory.mktemp("model") / "fold_0.txt"
    lgb.train({"verbose": -1, "num_leaves": 8, "num_threads": 1}, data, num_boost_round=5).save_model(
        str(path)
    )
    return path


def _run(slot_dir: Path, model: Path) -> TrainedRun:
    stacker = {"kind": "none", "columns": ["target"], "weights": [1.0]}
    return TrainedRun(run_id="r", slot="main", slot_dir=slot_dir, data_version="v5.2", feature_names=FEATURES,
                      models={"target": [model]}, stacker=stacker)  # fmt: skip


def _predict(tmp_path: Path, live_file: Path, model: Path) -> Path:
    out = tmp_path / "live_r1.parquet"
    predict_live(_run(tmp_path, model), live_file, out)
    return out


def test_a_good_live_file_predicts_and_submits(version_dir: Path, model_file: Path, tmp_path: Path) -> None:
    out = _predict(tmp_path, version_dir / "live.parquet", model_file)
    live = LivePredictions(path=out, rows=150, live_file=version_dir / "live.parquet")
    record = make_submission(live, tmp_path / "submission.csv")
    submitted = pd.read_csv(record.path)
    assert sorted(submitted["id"]) == sorted(read_live(version_dir / "live.parquet", FEATURES).ids)


def _set_value(frame: pd.DataFrame) -> pd.DataFrame:
    frame.iloc[3, frame.columns.get_loc("feature_0002")] = 7
    return frame


def _repeat_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(index={frame.index[1]: frame.index[0]})


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda f: f.iloc[:0], f"the live file has no rows; {REFETCH}"),
        (_set_value, r"column feature_0002 has values outside 0\.\.4 \(from 0 to 7\); Numerai's features"),
        (_repeat_id, r"1 ids appear more than once \(e\.g\. \['n"),
    ],
    ids=["empty", "values-outside-0..4", "ids-not-unique"],
)
def test_a_bad_live_file_is_refused_before_predicting(
    spoil, message: str, version_dir: Path, model_file: Path, tmp_path: Path
) -> None:
    live = rewrite_parquet(version_dir / "live.parquet", tmp_path / "data" / "live_1.parquet", spoil)
    with pytest.raises(DataError, match=message) as raised:
        _predict(tmp_path, live, model_file)
    assert str(raised.value).startswith(f"{live}:")
    assert not (tmp_path / "live_r1.parquet").exists()


def test_a_corrupt_row_group_is_named(version_dir: Path, tmp_path: Path) -> None:
    table = pq.read_table(version_dir / "train.parquet")
    damaged = tmp_path / "train.parquet"
    pq.write_table(table, damaged, row_group_size=table.num_rows // 2)
    chunk = pq.ParquetFile(damaged).metadata.row_group(1).column(3)  # a feature's pages, not the footer
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    with open(damaged, "r+b") as handle:
        handle.seek(start)
        handle.write(b"\xab" * chunk.total_compressed_size)
    with pytest.raises(DataError, match=f"a row group cannot be read .*; {REFETCH}") as raised:
        read_training(damaged, FEATURES, ["target"])
    assert str(raised.value).startswith(f"{damaged}:")
    rows = FeatureRows(SelectedRows(damaged), FEATURES)  # the path that bins training data
    rows.matrix(0)  # the undamaged row group still reads
    with pytest.raises(DataError, match=f"{damaged}: a row group cannot be read"):
        rows.matrix(1)


def test_a_truncated_model_file_is_refused_at_submit_time(
    version_dir: Path, model_file: Path, tmp_path: Path
) -> None:
    text = model_file.read_bytes()
    cut = tmp_path / "fold_0.txt"
    cut.write_bytes(text[: text.index(b"end of parameters")])  # LightGBM itself would load this
    with pytest.raises(ModelFileError, match="the LightGBM model file is incomplete") as raised:
        _predict(tmp_path, version_dir / "live.parquet", cut)
    assert str(raised.value).startswith(f"{cut}:")
    with pytest.raises(ModelFileError, match="the model file cannot be read"):
        _predict(tmp_path, version_dir / "live.parquet", tmp_path / "missing.txt")
    assert not (tmp_path / "live_r1.parquet").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda ids: np.append(ids, "n_not_live"), "1 ids are not in the live data"),
        (lambda ids: np.append(ids[1:], "n_not_live"), "invalid_submission_ids: Not enough stocks"),
        (lambda ids: ids[1:], "invalid_submission_ids: Not enough stocks"),
    ],
    ids=["an-extra-id", "an-id-replaced", "a-live-id-missing"],
)
def test_a_submission_whose_ids_differ_from_the_live_file_is_not_written(
    change, message: str, version_dir: Path, tmp_path: Path
) -> None:
    ids = change(read_live(version_dir / "live.parquet", FEATURES).ids)
    predictions = tmp_path / "live_r1.parquet"
    frame = pd.DataFrame({"stack": np.linspace(0, 1, len(ids))}, index=pd.Index(ids, name="id"))
    frame.to_parquet(predictions)
    live = LivePredictions(path=predictions, rows=len(ids), live_file=version_dir / "live.parquet")
    target = tmp_path / "submission.csv"
    with pytest.raises(SubmissionError, match=message) as raised:
        make_submission(live, target)
    assert str(raised.value).startswith(
        f"{predictions}: not a valid submission for the live file {live.live_file}"
    )
    assert not target.exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "No such file"),
        ("{not json", r"not a readable manifest \(1 error\(s\); the file: Invalid JSON"),
        ('{"run_id": "r"}', r"not a readable manifest \(\d+ error\(s\); created_at: Field required"),
    ],
    ids=["missing", "not-json", "missing-fields"],
)
def test_a_malformed_manifest_is_named_with_the_fix(content: str | None, reason: str, tmp_path: Path) -> None:
    slot_dir = tmp_path / "runs" / "20260101T000000Z-abc" / "slots" / "main"
    slot_dir.mkdir(parents=True)
    if content is not None:
        (slot_dir / "manifest.json").write_text(content)
    with pytest.raises(ManifestError, match=reason) as raised:
        load_trained_run(slot_dir)
    message = str(raised.value)
    assert message.startswith(f"{slot_dir / 'manifest.json'}: not the manifest of a trained model slot")
    assert "latest/main" in message


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "features.json: not found; run `numerflow synth"),
     ("{cut", f"features.json: not valid JSON .*; {REFETCH}")],
    ids=["missing", "not-json"],
)  # fmt: skip
def test_a_missing_or_damaged_features_json_is_named(
    content: str | None, message: str, config_dir: Path, synth_root: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(synth_root, data, copy_function=lambda s, d: Path(d).symlink_to(s))
    features = next(data.glob("*/features.json"))
    features.unlink()
    if content is not None:
        features.write_text(content)
    with pytest.raises(DataError, match=message):
        _plan(config_dir, data)


def test_numerflow_status_names_a_malformed_manifest_as_a_problem(config_dir: Path, tmp_path: Path) -> None:
    """`numerflow status` reports the slot whose latest manifest it cannot read, with the fix,
    instead of crashing before it shows anything."""
    work_dir = tmp_path / "work"
    config = load_config(config_dir, {"training.work_dir": str(work_dir)})
    slot = select_slots(config)[0].name
    run_dir = work_dir / "20260101T000000Z-abc"
    (run_dir / "slots" / slot).mkdir(parents=True)
    (run_dir / "slots" / slot / "manifest.json").write_text("{cut")
    mark_latest(work_dir, run_dir, slot)

    trained = latest_training(config)
    assert trained is not None and trained[slot]["validation_corr"] is None
    status = {
        "server": {"reachable": True},
        "work_pool": {"exists": True, "name": "p", "workers": [{"online": True}]},
        "credentials": {"needed": False},
        "alerts": {"automations": {}},
        "latest_training": trained,
    }
    [problem] = problems(status, config)
    assert problem.startswith(
        f"model slot {slot}: {run_dir / 'slots' / slot / 'manifest.json'}: not a readable"
    )
    assert f"latest/{slot}" in problem
