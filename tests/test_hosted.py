"""Hosted prediction: the pickle of a trained slot, checked in Numerai's pinned runtime (built once,
without numerflow) within lowered limits, and uploaded once per trained run to the fake API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cloudpickle
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from benchmarks.repeated_trees import repeat_trees
from numerflow.config import ConfigError, load_config
from numerflow.config.models import SlotConfig
from numerflow.hosted.build import PICKLE_NAME
from numerflow.hosted.check import PickleRefused, check_pickle
from numerflow.hosted.limits import GIB, Limits, posix_limits_available
from numerflow.hosted.runtime import ensure_runtime
from numerflow.hosted.slot import build_and_check, submitted_predictions
from numerflow.hosted.upload import PickleUpload, upload_pickle_once
from numerflow.hosted.watch import hosted_runs, watch_round
from numerflow.numerai import images as numerai_images
from numerflow.numerai import ledger
from numerflow.numerai.client import RoundInfo
from numerflow.numerai.images import UnsupportedPython, image_for, images, local_python
from numerflow.runs.manifest import TrainedRun
from numerflow.runs.plan import submit_plan_for_round
from numerflow.submit.file import make_submission
from numerflow.submit.live import predict_live
from tests.fake_numerai import HOSTED_REFUSAL, FakeNumerai
from tests.test_uploads import client_for

MODEL_ID = "11111111-2222-3333-4444-555555555555"


# -- a trained slot: two targets, two fold models each, ridge-like weights ----------------------
@pytest.fixture(scope="module")
def trained(version_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    slot_dir = tmp_path_factory.mktemp("slot")
    train = pd.read_parquet(version_dir / "train.parquet")
    features = [c for c in train.columns if c.startswith("feature_")]
    targets = ["target", next(c for c in train.columns if c.startswith("target_"))]
    models: dict[str, list[Path]] = {}
    for target in targets:
        known = train[target].notna()
        data = lgb.Dataset(train.loc[known, features].to_numpy(np.int8), train.loc[known, target])
        models[target] = []
        for fold in range(2):
            params = {"objective": "regression", "learning_rate": 0.1, "seed": fold, "verbosity": -1}
            path = slot_dir / f"{target}_{fold}.txt"
            lgb.train(params, data, num_boost_round=20).save_model(path)
            models[target].append(path)
    stacker = {"kind": "ridge", "columns": targets, "weights": [0.7, 0.3]}
    return TrainedRun(run_id="run-h", slot="hosted", slot_dir=slot_dir, data_version="v5.2",
                      feature_names=features, models=models, stacker=stacker)  # fmt: skip


@pytest.fixture(scope="module")
def submitted(trained: TrainedRun, version_dir: Path) -> Path:
    """What `numerflow submit --dry-run` writes for the slot: the same two steps."""
    live = predict_live(trained, version_dir / "live.parquet", trained.slot_dir / "live_local.parquet")
    return make_submission(live, trained.slot_dir / "submission.csv").path


@pytest.fixture(scope="session")
def runtime() -> Path:
    """Numerai's runtime for this Python, built once (cached by uv and by the pins' hash)."""
    return ensure_runtime(image_for())


def by_value(source: str) -> object:
    """A function defined in no importable module, so cloudpickle writes its code (as Numerai's
    participants' notebooks do)."""
    namespace: dict = {"__name__": "notebook", "pd": pd, "np": np}
    exec(source, namespace)
    return namespace["predict"]


def write(function: object, path: Path) -> Path:
    path.write_bytes(cloudpickle.dumps(function))
    return path


# -- the pickle numerflow builds --------------------------------------------------------------
@pytest.mark.slow
def test_pickle_predicts_what_submit_submits(
    trained: TrainedRun, submitted: Path, version_dir: Path, runtime: Path, tmp_path: Path
) -> None:
    checked = build_and_check(trained, version_dir / "live.parquet", submitted, out_dir=tmp_path)
    expected = submitted_predictions(submitted)
    assert checked.check.max_abs_diff < 1e-6 and checked.check.rows == len(expected)
    assert checked.check.peak_memory_bytes and checked.check.peak_memory_bytes < 4 * GIB
    assert checked.record.models == 4 and checked.record.python == local_python()
    # it loaded where numerflow cannot be imported: the runtime has the image's pandas, not numerflow's
    pins = image_for().packages
    probe = __import__("subprocess").run(
        [str(runtime), "-I", "-c", "import pandas, importlib.util as u; "
         "print(pandas.__version__, u.find_spec('numerflow') is None)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert probe.stdout.split() == [pins["pandas"], "True"]


def test_repeated_trees_load_and_scale_the_models_scores(trained: TrainedRun, version_dir: Path) -> None:
    """The benchmark's proxy for a bigger model: the trees repeated, renumbered, loadable, and its
    raw scores the original's times the copies (so its ranked predictions are the original's)."""
    text = trained.models["target"][0].read_text(encoding="utf-8")
    original = lgb.Booster(model_str=text)
    grown = lgb.Booster(model_str=repeat_trees(text, 3))
    features = pd.read_parquet(version_dir / "live.parquet", columns=trained.feature_names).to_numpy(
        np.float32
    )
    assert grown.num_trees() == 3 * original.num_trees()
    np.testing.assert_allclose(grown.predict(features), 3 * original.predict(features), rtol=1e-12)
    assert repeat_trees(text, 1) == text


# -- pickles Numerai would refuse, refused here before any upload ----------------------------
REFUSED = {
    "numerflow module": (  # a helper from the local project is pickled by reference
        "from numerflow.submit.file import build_submission\n"
        "def predict(live, bench):\n"
        "    return build_submission(live.index.to_numpy(), live.iloc[:, 1].to_numpy()).set_index('id')",
        "No module named 'numerflow'",
    ),
    "three arguments": ("def predict(a, b, c):\n    return None", "must have 1 or 2 arguments"),
    "NaN": (
        "def predict(live, bench):\n    return pd.DataFrame({'prediction': np.nan}, index=live.index)",
        "NaN",
    ),
    "outside [0, 1]": (
        "def predict(live, bench):\n    return pd.DataFrame({'prediction': 1.5}, index=live.index)",
        "between 0 and 1",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(REFUSED))
def test_a_broken_pickle_is_refused_naming_the_cause(
    case: str, submitted: Path, version_dir: Path, runtime: Path, tmp_path: Path
) -> None:
    source, cause = REFUSED[case]
    path = write(by_value(source), tmp_path / PICKLE_NAME)
    with pytest.raises(PickleRefused, match=cause.replace("[", r"\[")) as refused:
        check_pickle(path, runtime, version_dir / "live.parquet", submitted_predictions(submitted))
    assert refused.value.cause == "runner"  # as Numerai's runner would fail it


HOG = "def predict(live, bench):\n    hog = np.ones(300_000_000)\n    return hog"  # 2.4 GB
SLEEPER = "def predict(live, bench):\n    import time\n    time.sleep(600)"


@pytest.mark.slow
@pytest.mark.parametrize(
    "posix",
    [
        pytest.param(True, marks=pytest.mark.skipif(not posix_limits_available(), reason="no `resource`")),
        False,
    ],
    ids=["rlimit", "watchdog"],
)
def test_over_the_memory_limit_is_refused(
    posix: bool, submitted: Path, version_dir: Path, runtime: Path, tmp_path: Path
) -> None:
    """The Windows path (psutil watchdog) runs on Linux too; under tests/simulate_windows.py
    (no `resource`) it is the only one."""
    path = write(by_value(HOG), tmp_path / PICKLE_NAME)
    limits = Limits(memory_bytes=int(1.5 * GIB))
    with pytest.raises(PickleRefused, match=r"over the memory limit of 1\.5 GiB") as refused:
        check_pickle(path, runtime, version_dir / "live.parquet", submitted_predictions(submitted), None,
                     limits, posix=posix)  # fmt: skip
    assert refused.value.cause == "memory"


@pytest.mark.slow
def test_over_the_time_limit_is_refused(
    submitted: Path, version_dir: Path, runtime: Path, tmp_path: Path
) -> None:
    path = write(by_value(SLEEPER), tmp_path / PICKLE_NAME)
    with pytest.raises(PickleRefused, match="over the time limit: no answer within 8 s") as refused:
        check_pickle(path, runtime, version_dir / "live.parquet", submitted_predictions(submitted), None,
                     Limits(timeout_s=8))  # fmt: skip
    assert refused.value.cause == "time"


def test_a_python_numerai_does_not_run_is_refused_up_front() -> None:
    with pytest.raises(
        UnsupportedPython, match=r"3\.14: Numerai runs uploaded models only on Python"
    ) as info:
        image_for("3.14")
    for version in images():
        assert version in str(info.value)


def test_a_hosted_slot_on_a_python_numerai_does_not_run_fails_before_any_work(
    monkeypatch: pytest.MonkeyPatch, config_dir: Path
) -> None:
    hosted_slot = {"name": "hosted", "submit_via": "model_upload", "model_id": MODEL_ID}
    config = load_config(config_dir, {"training.models": [hosted_slot, "plain"]})
    assert submit_plan_for_round(config).slots[0].hosted  # this Python has an image
    monkeypatch.setattr(numerai_images, "local_python", lambda: "3.14")
    with pytest.raises(
        ConfigError, match=r"\['hosted'\]: submit_via: model_upload: Python 3\.14: Numerai runs"
    ):
        submit_plan_for_round(config)
    assert [s.name for s in submit_plan_for_round(config, ["plain"]).slots] == ["plain"]


def test_a_model_upload_slot_needs_a_model_id() -> None:
    with pytest.raises(ValidationError, match="submit_via: model_upload needs model_id"):
        SlotConfig(name="hosted", submit_via="model_upload")
    assert SlotConfig(name="hosted", submit_via="model_upload", model_id=MODEL_ID).model_id == MODEL_ID


# -- the upload ------------------------------------------------------------------------------
@pytest.fixture
def fake() -> Iterator[FakeNumerai]:
    server = FakeNumerai().start()
    yield server
    server.stop()


def pickle_request(path: Path, run_id: str = "run-h", python: str | None = None) -> PickleUpload:
    path.write_bytes(b"not really a pickle: the upload does not read it")
    image = image_for(python)
    return PickleUpload("my_model", MODEL_ID, run_id, path, "sha", image.docker_image, "v5.2")


def test_the_upload_names_the_local_pythons_image_not_numerais_default(
    fake: FakeNumerai, tmp_path: Path
) -> None:
    request = pickle_request(tmp_path / PICKLE_NAME)
    outcome = upload_pickle_once(client_for(fake.api_url), tmp_path / "runs", request)
    [create] = fake.hosted.creates
    local = fake.hosted.docker_images[f"Python {local_python()}"]
    assert outcome.status == "uploaded" and outcome.submission_id == create["id"]
    assert create["image"] == local != fake.hosted.default_image
    assert create["dataVersionId"] == fake.hosted.data_versions["v5.2"]
    assert create["body"] == request.path.read_bytes()
    [entry] = ledger.model_uploads(tmp_path / "runs")
    assert (entry.upload_id, entry.server_filename) == (create["id"], create["filename"])


def test_a_put_answering_503_then_200_uploads_once(fake: FakeNumerai, tmp_path: Path) -> None:
    fake.fail_next("put", 503)
    outcome = upload_pickle_once(
        client_for(fake.api_url), tmp_path / "runs", pickle_request(tmp_path / "p.pkl")
    )
    assert outcome.status == "uploaded" and len(fake.hosted.creates) == 1
    assert fake.counts["put"] == 2
    assert ledger.model_uploads(tmp_path / "runs")[0].attempts == {"upload-url": 1, "put": 2, "create": 1}


def test_a_second_trigger_with_the_same_trained_run_does_not_upload_again(
    fake: FakeNumerai, tmp_path: Path
) -> None:
    work, client = tmp_path / "runs", client_for(fake.api_url)
    first = upload_pickle_once(client, work, pickle_request(tmp_path / "p.pkl"))
    again = upload_pickle_once(client, work, pickle_request(tmp_path / "p.pkl"))
    assert (first.status, again.status) == ("uploaded", "skipped")
    assert again.submission_id == first.submission_id and len(fake.hosted.creates) == 1
    newer = upload_pickle_once(client, work, pickle_request(tmp_path / "p.pkl", run_id="run-next"))
    assert newer.status == "uploaded" and len(fake.hosted.creates) == 2


def test_an_image_numerai_does_not_list_is_not_uploaded(fake: FakeNumerai, tmp_path: Path) -> None:
    del fake.hosted.docker_images[f"Python {local_python()}"]
    outcome = upload_pickle_once(
        client_for(fake.api_url), tmp_path / "runs", pickle_request(tmp_path / "p.pkl")
    )
    assert outcome.status == "failed" and f"'Python {local_python()}'" in outcome.detail
    assert fake.hosted.creates == [] and fake.uploads == {}


def test_the_fake_refuses_prediction_uploads_for_a_model_with_a_pickle(
    fake: FakeNumerai, tmp_path: Path
) -> None:
    client = client_for(fake.api_url)
    upload_pickle_once(client, tmp_path / "runs", pickle_request(tmp_path / "p.pkl"))
    target = client.upload_target(tmp_path / "p.pkl", MODEL_ID)
    client.put_file(target.url, b"id,prediction\n")
    with pytest.raises(ValueError, match="uploaded pickle"):
        client.create_submission(target.filename, MODEL_ID)
    assert HOSTED_REFUSAL and fake.submissions == []


# -- watching Numerai's runs -------------------------------------------------------------------
def _round(fake: FakeNumerai, opened_minutes_ago: float) -> RoundInfo:
    now = datetime.now(UTC)
    return RoundInfo(
        fake.round_number or 0, now - timedelta(minutes=opened_minutes_ago), now + timedelta(hours=1)
    )


def test_a_run_still_pending_is_waited_for_and_a_success_records_no_incident(
    fake: FakeNumerai, tmp_path: Path
) -> None:
    upload_pickle_once(client_for(fake.api_url), tmp_path / "runs", pickle_request(tmp_path / "p.pkl"))
    fake.hosted.add_trigger(MODEL_ID, "Running")
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # Numerai finishes its run while numerflow waits
        waits.append(seconds)
        fake.hosted.add_trigger(MODEL_ID, "Success")

    info = _round(fake, opened_minutes_ago=1)
    assert (
        watch_round(client_for(fake.api_url), tmp_path / "runs", ["my_model"], info, 45, 5, sleep=sleep) == []
    )
    assert waits == [5]
    [run] = hosted_runs(tmp_path / "runs")
    assert (run.status, run.trigger, run.incident) == ("Success", "trigger-2", False)


def test_no_success_by_the_deadline_is_one_incident(fake: FakeNumerai, tmp_path: Path) -> None:
    upload_pickle_once(client_for(fake.api_url), tmp_path / "runs", pickle_request(tmp_path / "p.pkl"))
    info = _round(fake, opened_minutes_ago=10)
    first, again = (
        watch_round(client_for(fake.api_url), tmp_path / "runs", ["my_model"], info, 5, 5, sleep=pytest.fail)
        for _ in range(2)
    )
    assert [o.status for o in first] == ["failed"] and "has not succeeded 5 min after" in first[0].detail
    assert [o.status for o in again] == ["skipped"] and "alerted already" in again[0].detail
    assert [r.incident for r in hosted_runs(tmp_path / "runs")] == [True, False]


def test_the_missed_round_alert_waits_only_for_models_this_machine_predicts(config_dir: Path) -> None:
    """Numerai runs a model_upload slot's pickle itself: no prediction upload comes for its model,
    so the per-round flow's round-started events (which the missed-round alert waits on) leave it
    out; the hosted check watches Numerai's run of it instead."""
    hosted_slot = {"name": "hosted", "submit_via": "model_upload", "model_id": MODEL_ID}
    config = load_config(config_dir, {"training.models": [hosted_slot, "plain"]})
    plan = submit_plan_for_round(config)
    hosted = next(s.submit_as for s in plan.slots if s.hosted)
    assert plan.submitting_models() == [hosted, "plain"]  # a slot submits as its name
    assert plan.predicting_models() == ["plain"]
