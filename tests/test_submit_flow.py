"""The flows against the loopback fake Numerai API and a real Prefect server: download, train,
submit once per model and round, and never leak the secret."""

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    ArtifactFilterType,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
)
from prefect.settings import get_current_settings

from flows.submit import submit_flow
from flows.weekly import weekly_flow
from numerflow.numerai import ledger
from numerflow.numerai.blocks import NumeraiCredentials
from tests.fake_numerai import FakeNumerai
from tests.month import Month, run_month
from tests.processes import BIN

SECRET = "S3CRET-numerflow-7d1c2b"
PUBLIC = "PUB-numerflow-94af"
BLOCK = "numerai-test"


@pytest.fixture(scope="module")
def fake(version_dir: Path) -> Iterator[FakeNumerai]:
    server = FakeNumerai(public_id=PUBLIC, secret_key=SECRET)
    server.add_dataset_dir(version_dir)
    live = (version_dir / "live.parquet").read_bytes()
    server.round_files[("v5.2/live.parquet", 1001)] = live
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, fake: FakeNumerai, prefect_server: None) -> dict:
    """A weekly run that downloads from the fake, trains and uploads: the state later tests build on."""
    root = tmp_path_factory.mktemp("project")
    NumeraiCredentials(public_id=PUBLIC, secret_key=SECRET, model_ids=fake.models).save(BLOCK, overwrite=True)
    overrides = {
        "training.data.dir": str(root / "data"),
        "training.data.version": "latest",
        "training.data.era_stride": 1,
        "training.work_dir": str(root / "runs"),
        "training.submission.path": str(root / "submission.csv"),
        "training.folds.n_folds": 3,
        "training.folds.embargo_eras": 4,
        "training.models": ["my_model"],
        "training.numerai.download": True,
        "training.numerai.upload": True,
        "training.numerai.api_url": fake.api_url,
        "training.numerai.credentials_block": BLOCK,
        "training.numerai.read_timeout_s": 5,
        "training.numerai.retry_budget_s": 10,
        "program_input_params.params.n_estimators": 40,
        "program_input_params.params.learning_rate": 0.1,
    }
    state = weekly_flow(overrides=overrides, return_state=True)
    assert state.is_completed(), state.message
    return {"root": root, "overrides": overrides, "weekly": state.result(),
            "weekly_run_id": state.state_details.flow_run_id}  # fmt: skip


def _submissions(fake: FakeNumerai) -> int:
    return len(fake.submissions)


def test_weekly_flow_downloads_trains_and_uploads(project: dict, fake: FakeNumerai) -> None:
    weekly = project["weekly"]
    data = project["root"] / "data" / "v5.2"
    assert {"train.parquet", "validation.parquet", "features.json", "live_1001.parquet"} <= {
        p.name for p in data.iterdir()
    }
    assert weekly.submission.status == "submitted" and weekly.submission.round == 1001
    [upload] = weekly.submission.uploads
    assert upload.status == "uploaded" and upload.submission_id == fake.submissions[0]["id"]
    body = pd.read_csv(pd.io.common.BytesIO(fake.submissions[0]["body"]))
    assert list(body.columns) == ["id", "prediction"] and len(body) == 150
    [entry] = ledger.entries(project["root"] / "runs")
    assert (entry.round, entry.model, entry.trained_run_id) == (1001, "my_model", weekly.run_id)


def test_repeated_triggers_upload_once_and_force_uploads_again(project: dict, fake: FakeNumerai) -> None:
    before, downloads = _submissions(fake), fake.counts["get"]
    for _ in range(3):
        outcome = submit_flow(overrides=project["overrides"])
        assert outcome.status == "submitted"
        assert [u.status for u in outcome.uploads] == ["skipped"]
    assert _submissions(fake) == before  # the weekly run already uploaded round 1001
    assert fake.counts["get"] == downloads  # live data for the round was already here

    forced = submit_flow(overrides=project["overrides"], force=True)
    assert [u.status for u in forced.uploads] == ["uploaded"]
    assert _submissions(fake) == before + 1
    assert [e.forced for e in ledger.entries(project["root"] / "runs")] == [False, True]


def test_new_round_uploads_once(project: dict, fake: FakeNumerai) -> None:
    fake.round_number = 1002
    try:
        before = _submissions(fake)
        for _ in range(3):
            submit_flow(overrides=project["overrides"])
        assert _submissions(fake) == before + 1
        assert fake.submissions[-1]["round"] == 1002
        assert (project["root"] / "data" / "v5.2" / "live_1002.parquet").is_file()
    finally:
        fake.round_number = 1001


def test_no_open_round_ends_cleanly(project: dict, fake: FakeNumerai) -> None:
    before = _submissions(fake)
    fake.round_open = False
    try:
        state = submit_flow(overrides=project["overrides"], return_state=True)
        assert state.is_completed()
        outcome = state.result()
        assert outcome.status == "no-open-round" and "no round is open" in outcome.message
    finally:
        fake.round_open = True
    fake.round_number = None
    try:
        assert submit_flow(overrides=project["overrides"]).status == "no-open-round"
    finally:
        fake.round_number = 1001
    assert _submissions(fake) == before


def test_dry_run_uploads_nothing(project: dict, fake: FakeNumerai) -> None:
    before = _submissions(fake)
    outcome = submit_flow(overrides=project["overrides"], dry_run=True, force=True)
    assert outcome.status == "dry-run" and [u.status for u in outcome.uploads] == ["dry-run"]
    assert _submissions(fake) == before


def test_bad_credentials_fail_the_flow_with_a_clear_message(project: dict, fake: FakeNumerai) -> None:
    NumeraiCredentials(public_id=SECRET, secret_key=PUBLIC, model_ids=fake.models).save(
        "swapped", overwrite=True
    )
    state = submit_flow(
        overrides=project["overrides"] | {"training.numerai.credentials_block": "swapped"}, return_state=True
    )
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert "rejected the credentials" in message and "swapped" in message


def test_missing_credentials_block_says_how_to_create_it(project: dict) -> None:
    state = submit_flow(
        overrides=project["overrides"] | {"training.numerai.credentials_block": "nowhere"}, return_state=True
    )
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert "`uv run numerflow setup credentials --block-name nowhere`" in message
    assert "Unable to find block document" not in message
    with get_client(sync_client=True) as client:
        parent = client.read_flow_run(state.state_details.flow_run_id)
        [child] = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id]))
        )
    assert parent.name.startswith("round-pending-") and child.name == f"{parent.name}-submission"


def test_weekly_run_is_named_after_the_resolved_version(project: dict) -> None:
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(project["weekly_run_id"])
    assert project["overrides"]["training.data.version"] == "latest"
    assert re.fullmatch(r"weekly-\d{4}-\d\d-\d\d-v5\.2-[0-9a-f]{8}", run.name), run.name


def test_training_progress_artifacts_reach_100_percent(project: dict) -> None:
    children = FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[project["weekly_run_id"]]))
    with get_client(sync_client=True) as client:
        [folds_run] = [r for r in client.read_flow_runs(flow_run_filter=children) if "-folds-" in r.name]
        progress = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[folds_run.id]),
                type=ArtifactFilterType(any_=["progress"]),
            )
        )
    per_fold = sorted(a.description for a in progress if a.task_run_id is not None)
    expected = sorted(f"{t} fold {k}: 40/40 trees" for t in ("target", "target_cyrusd_20") for k in range(3))
    assert per_fold == expected
    [whole] = [a for a in progress if a.task_run_id is None]
    assert whole.description.startswith("6/6 fold models trained")
    assert {float(a.data) for a in progress} == {100.0}


def test_the_weekly_run_itself_carries_its_artifacts_and_the_submissions(project: dict) -> None:
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[project["weekly_run_id"]])
            )
        )
    keys = {a.key for a in artifacts}
    assert keys >= {"numerflow-run-summary", "numerflow-metrics", "numerflow-submissions"}
    assert all(a.task_run_id is None for a in artifacts if a.type != "progress")  # on the flow run
    # the final models' progress (training.final_model, shipped on): one per target, on its task
    final = sorted(a.description for a in artifacts if a.type == "progress")
    assert final == ["final target: 40/40 trees", "final target_cyrusd_20: 40/40 trees"]
    [submissions] = [a for a in artifacts if a.key == "numerflow-submissions"]
    assert submissions.description == "uploads for round 1001" and "None" not in str(submissions.data)


def test_the_secret_is_nowhere_in_what_runs_produced(project: dict, caplog: pytest.LogCaptureFixture) -> None:
    submit_flow(overrides=project["overrides"], force=True)  # one more run with everything on
    secret = SECRET.encode()

    leaks = [p for p in project["root"].rglob("*") if p.is_file() and secret in p.read_bytes()]
    assert leaks == []
    assert SECRET not in caplog.text

    with get_client(sync_client=True) as client:
        logs = client.read_logs(limit=200)
        artifacts = client.read_artifacts(limit=200)
        runs = client.read_flow_runs(limit=200)
    assert logs and artifacts and runs
    assert not [entry for entry in logs if SECRET in entry.message]
    assert not [a for a in artifacts if SECRET in str(a.data)]
    assert not [r for r in runs if SECRET in str(r.parameters)]

    database = Path(get_current_settings().server.database.connection_url.get_secret_value().split("///")[-1])
    files = [p for p in database.parent.glob(database.name + "*") if p.is_file()]
    assert files and not [p for p in files if secret in p.read_bytes()]


def test_submit_command(project: dict, fake: FakeNumerai) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    args = ["submit", "--dry-run"]
    for key, value in project["overrides"].items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "(dry-run, round 1001)" in result.output and "my_model: dry-run" in result.output


def _numerflow_submit(project: dict, *args: str) -> subprocess.Popen:
    """`numerflow submit` as its own process, on this session's Prefect server."""
    command = [str(BIN / "numerflow"), "submit", *args]
    for key, value in project["overrides"].items():
        command += ["--set", f"{key}={json.dumps(value)}"]
    env = {**os.environ, "PREFECT_API_URL": get_current_settings().api.url or ""}
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=project["root"]
    )


def test_a_simulated_month_submits_every_reachable_round_once(project: dict, fake: FakeNumerai) -> None:
    NumeraiCredentials(public_id=SECRET, secret_key=PUBLIC, model_ids=fake.models).save(
        "month-swapped", overwrite=True
    )
    month = Month(
        fake,
        run_flow=lambda overrides=None, **params: submit_flow(
            overrides=project["overrides"] | (overrides or {}), return_state=True, **params
        ),
        run_command=lambda *args: _numerflow_submit(project, *args),
        bad_credentials={"training.numerai.credentials_block": "month-swapped"},
    )
    try:
        tally = run_month(month)
    finally:
        fake.round_number, fake.opens_at, fake.round_open = 1001, None, True
    assert tally["reachable submitted"] == tally["reachable"] == 18
    assert tally["double uploads"] == 0 and tally["silent misses"] == 0


@pytest.mark.slow
def test_live_scores_are_kept_and_a_failing_scores_api_leaves_the_round_alone(
    project: dict, fake: FakeNumerai
) -> None:
    from typer.testing import CliRunner

    from cli.main import app
    from numerflow.live.store import history_path
    from tests.fake_numerai import daily_scores
    from tests.prefect_stack import project_config

    work_dir = project["root"] / "runs"
    model_id = fake.models["my_model"]
    fake.scores[model_id] = daily_scores(1001, {"v2_corr20": 0.02, "mmc": 0.004}, days=6)
    fake.scores[model_id] += daily_scores(999, {"v2_corr20": 0.03, "mmc": 0.01, "bmc": 0.001}, days=20)
    try:
        state = submit_flow(overrides=project["overrides"], return_state=True)
        assert state.is_completed() and state.result().status == "submitted"
        stored = history_path(work_dir, "my_model").read_bytes()
        with get_client(sync_client=True) as client:
            [artifact] = client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
                    key=ArtifactFilterKey(any_=["numerflow-live-scores"]),
                )
            )
        weekly_run = project["weekly"].run_id
        assert f"| 1001 | {weekly_run} |" in artifact.data and "(day 6)" in artifact.data
        assert "| 999 | - (not in the ledger) | **+0.0300** final" in artifact.data

        edits = {"training": {key.removeprefix("training."): value for key, value in
                              project["overrides"].items() if key.startswith("training.")}}  # fmt: skip
        config_dir = project_config(project["root"] / "cli-config", edits)
        shown = CliRunner().invoke(app, ["scores", "--no-fetch", "--json", "--config-dir", str(config_dir)])
        assert shown.exit_code == 0, shown.output
        summary = json.loads(shown.output)["my_model"]["summary"]
        assert summary["last_resolved_round"] == 999 and summary["pending_rounds"] == [1001]

        fake.fail_next("submissionScores", *[503] * 1000)
        before = _submissions(fake)
        again = submit_flow(overrides=project["overrides"], force=True)
        assert again.status == "submitted" and [u.status for u in again.uploads] == ["uploaded"]
        assert _submissions(fake) == before + 1
        assert history_path(work_dir, "my_model").read_bytes() == stored
        failed = CliRunner().invoke(app, ["scores", "--config-dir", str(config_dir)])
        assert failed.exit_code == 1 and "not fetched (stored history shown)" in failed.output
        assert "final" in failed.output and "999" in failed.output
    finally:
        fake.faults.statuses.clear()
        fake.scores.clear()
