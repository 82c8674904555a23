"""A `model_upload` slot through the real flows, a real Prefect server and the fake Numerai API:
the weekly run uploads its checked pickle (never predictions), the per-round flow does not upload
it again, and watches Numerai's run of it, alerting once when it failed; a pickle the check
refuses fails the run plainly (the failed-run alert), not as an upload given up."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from prefect.client.schemas.objects import StateType
from typer.testing import CliRunner

from cli.main import app
from flows.submit import submit_flow
from flows.weekly import weekly_flow
from numerflow.config import load_config
from numerflow.hosted import check, watch
from numerflow.hosted.build import PICKLE_NAME
from numerflow.hosted.limits import Limits
from numerflow.hosted.status import hosted_lines, hosted_status
from numerflow.numerai import ledger
from numerflow.numerai.blocks import NumeraiCredentials
from numerflow.numerai.images import local_python
from numerflow.ops.alerts import UPLOAD_GIVEN_UP_STATE
from numerflow.runs.manifest import read_manifest
from tests.conftest import overrides_for_speed
from tests.fake_numerai import FakeNumerai

BLOCK = "numerai-hosted-test"
MODEL_ID = "11111111-2222-3333-4444-555555555555"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeNumerai]:
    server = FakeNumerai(models={"my_model": MODEL_ID}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hosted(
    tmp_path_factory: pytest.TempPathFactory, synth_root: Path, fake: FakeNumerai, prefect_server: None
) -> dict:
    root = tmp_path_factory.mktemp("hosted")
    NumeraiCredentials(public_id=fake.public_id, secret_key=fake.secret_key, model_ids={}).save(
        BLOCK, overwrite=True
    )
    overrides = overrides_for_speed(synth_root, root) | {
        "training.models": [{"name": "my_model", "submit_via": "model_upload", "model_id": MODEL_ID}],
        "training.numerai.upload": True,
        "training.numerai.api_url": fake.api_url,
        "training.numerai.credentials_block": BLOCK,
        "training.numerai.retry_budget_s": 10,
        "deployments.round.hosted_check_minutes": 1,  # the fake's round opened 10 minutes ago
    }
    state = weekly_flow(overrides=overrides, return_state=True)
    assert state.is_completed(), state.message
    return {"root": root, "overrides": overrides, "weekly": state.result()}


@pytest.mark.slow
def test_the_weekly_run_uploads_the_checked_pickle_and_no_predictions(
    hosted: dict, fake: FakeNumerai
) -> None:
    weekly = hosted["weekly"]
    [upload] = weekly.submission.uploads
    [create] = fake.hosted.creates
    assert upload.status == "uploaded" and upload.submission_id == create["id"]
    assert (
        create["image"] == fake.hosted.docker_images[f"Python {local_python()}"] != fake.hosted.default_image
    )
    assert fake.submissions == [] and fake.counts["submission_upload_auth"] == 0  # never predictions
    slot_dir = weekly.run_dir / "slots" / "my_model"
    record = read_manifest(slot_dir).model_upload
    assert record is not None and record["path"] == PICKLE_NAME
    assert (slot_dir / PICKLE_NAME).read_bytes() == create["body"]
    assert record["check"]["max_abs_diff"] < 1e-6 and record["check"]["rows"] == len(
        pd.read_csv(hosted["root"] / "submission.csv")
    )  # the pickle predicted every row `numerflow submit` wrote, within 1e-6


@pytest.mark.slow
def test_the_round_flow_does_not_upload_again_and_alerts_once_on_a_failed_run(
    hosted: dict, fake: FakeNumerai
) -> None:
    fake.hosted.add_trigger(MODEL_ID, "Failed", "Out of memory")
    first = submit_flow(overrides=hosted["overrides"], return_state=True)
    again = submit_flow(overrides=hosted["overrides"], return_state=True)
    assert first.name == UPLOAD_GIVEN_UP_STATE and "Out of memory" in first.message
    assert again.is_completed()
    statuses = [u.status for u in again.result().uploads]
    assert statuses == ["skipped", "skipped"]  # the pickle of this run is on Numerai; alerted already
    assert len(fake.hosted.creates) == 1 and fake.submissions == []
    assert len(ledger.model_uploads(hosted["root"] / "runs")) == 1
    runs = watch.hosted_runs(hosted["root"] / "runs")
    assert [r.incident for r in runs] == [True, False] and {r.status for r in runs} == {"Failed"}
    shown = hosted_lines(hosted_status(load_config(None, hosted["overrides"])))
    weekly = hosted["weekly"]
    uploaded_at = ledger.model_uploads(hosted["root"] / "runs")[0].recorded_at
    expected = f"my_model pickle of run {weekly.run_id} uploaded {uploaded_at}; Numerai's last run: round"
    assert shown[1].split() == [*expected.split(), f"{fake.round_number},", "Failed"]


@pytest.mark.slow
def test_the_pickle_command_builds_and_checks_without_uploading(
    hosted: dict, fake: FakeNumerai, tmp_path: Path
) -> None:
    pairs = [
        arg for key, value in hosted["overrides"].items() for arg in ("--set", f"{key}={json.dumps(value)}")
    ]
    creates = len(fake.hosted.creates)
    done = CliRunner().invoke(app, ["pickle", "--out", str(tmp_path), *pairs])
    assert done.exit_code == 0, done.output
    assert f"my_model: {tmp_path / PICKLE_NAME}" in done.output and "Python 3." in done.output
    diff = float(re.search(r"max \|difference\| (\S+)", done.output).group(1))
    assert diff < 1e-6 and len(fake.hosted.creates) == creates  # checked, nothing uploaded
    missing = CliRunner().invoke(app, ["pickle", "--model", "never_trained", *pairs])
    assert missing.exit_code == 1 and "never_trained: no trained run" in missing.output


@pytest.mark.slow
def test_a_refused_pickle_fails_the_run_naming_the_cause_and_uploads_nothing(
    hosted: dict, fake: FakeNumerai, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Last in the module: it adds a run of Numerai's that succeeded. The time limit is lowered so
    the real check refuses the pickle; `force` builds and checks it again."""
    monkeypatch.setattr(check, "Limits", lambda: Limits(timeout_s=0.05))
    fake.hosted.add_trigger(MODEL_ID, "Success")  # Numerai's run of the uploaded pickle is fine
    creates = len(fake.hosted.creates)
    state = submit_flow(overrides=hosted["overrides"], force=True, return_state=True)
    # a plain Failed raises the failed-run alert; UploadGivenUp would raise the upload alert instead
    assert state.type == StateType.FAILED and state.name == "Failed" != UPLOAD_GIVEN_UP_STATE
    assert "my_model: PickleRefused" in state.message and "over the time limit" in state.message
    assert len(fake.hosted.creates) == creates and fake.submissions == []
