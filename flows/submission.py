"""The submission subflow, shared by the weekly flow and the per-round flow:

    credentials (block) -> current round -> live data for the round -> live predictions
    -> validated submission file -> one upload per model and round (ledger) -> artifacts

Offline (no download, no upload) it predicts the local live file and records a dry run.
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run
from prefect.states import Failed

from flows.expected import fails_cleanly
from flows.naming import parent_run_name, rename_run
from numerflow.config.models import NumerflowConfig
from numerflow.numerai.blocks import load_credentials
from numerflow.numerai.client import NumeraiClient, RoundInfo
from numerflow.numerai.errors import NumeraiError
from numerflow.ops.alerts import UPLOAD_GIVEN_UP_STATE, emit_round_started, emit_upload_given_up
from numerflow.runs.manifest import latest_run, load_trained_run
from numerflow.runs.names import child_run_name, round_placeholder_name, round_run_name
from numerflow.submit.steps import (
    SubmissionOutcome,
    live_path,
    make_client,
    resolve_model_ids,
)
from tasks.evaluation import publish_submissions
from tasks.numerai import (
    current_round,
    download_live_data,
    predict_live_task,
    upload_submissions,
    write_submission_task,
)


def round_placeholder() -> str:
    """The per-round flow's name until the round is known."""
    return round_placeholder_name(flow_run.get_id())


def _run_name() -> str:
    return child_run_name(parent_run_name(), "submission")


@flow(name="numerflow-submission", flow_run_name=_run_name)
@fails_cleanly
def submission_flow(
    config: NumerflowConfig,
    run_dir: Path | None = None,
    round_number: int | None = None,
    dry_run: bool = False,
    force: bool = False,
    wait_for_round_minutes: int = 0,
    poll_seconds: float = 30.0,
) -> SubmissionOutcome:
    logger = get_run_logger()
    settings = config.training.numerai
    uploading = settings.upload and not dry_run
    run_dir = run_dir or latest_run(config.training.work_dir)
    if run_dir is None:
        raise NumeraiError(f"no trained run in {config.training.work_dir}: run the weekly flow first")
    run = load_trained_run(run_dir)
    config = config.model_copy(deep=True)
    config.training.data.version = run.data_version  # predict live data of the version it trained on

    client, known_ids = connect(config) if uploading or settings.download else (None, {})
    models = config.training.models
    model_ids = (
        resolve_model_ids(models, known_ids, client) if uploading and client else dict.fromkeys(models, "")
    )
    if client is not None and round_number is None:
        info = _wait_for_open_round(client, wait_for_round_minutes, poll_seconds)
        if info is None or not info.is_open():
            message = "no round is open for submissions right now" + (
                f" (round {info.number} closed at {info.close_time:%Y-%m-%d %H:%M} UTC)" if info else ""
            )
            logger.info("%s; nothing to submit", message)
            return SubmissionOutcome(
                status="no-open-round", round=info.number if info else None, message=message
            )
        round_number = info.number
    _name_runs(round_number, config.training.models, uploading)
    if uploading and round_number is not None:
        emit_round_started(round_number, list(model_ids))

    if client is not None and settings.download and round_number is not None:
        live_file = download_live_data(config, client, round_number, run.feature_names)
    else:
        live_file = live_path(config, round_number)
        if not live_file.is_file():
            live_file = live_path(config, None)
    suffix = f"r{round_number}" if round_number is not None else "local"
    live = predict_live_task(run, live_file, run_dir / f"live_{suffix}.parquet")
    submission = write_submission_task(live, config.training.submission.path)
    uploads = upload_submissions(
        config, client if uploading else None, model_ids, submission, round_number, run.run_id, force,
        dry_run=not uploading,
    )  # fmt: skip
    failed = any(u.status == "failed" for u in uploads)
    outcome = SubmissionOutcome(
        status="upload-failed" if failed else "submitted" if uploading else "dry-run",
        round=round_number,
        trained_run_id=run.run_id,
        submission=submission,
        uploads=uploads,
    )
    publish_submissions(outcome)
    return outcome


def upload_failure_state(outcome: SubmissionOutcome) -> State | None:
    """For uploads given up: one `numerflow.upload.given-up` event per model (the alert) and
    the run's final state, Failed but named UploadGivenUp so the failed-run alert stays quiet."""
    failed = [u for u in outcome.uploads if u.status == "failed"]
    if not failed:
        return None
    run_id = flow_run.get_id() or ""
    with get_client(sync_client=True) as client:
        run_name = client.read_flow_run(run_id).name if run_id else ""  # after any renaming
    for upload in failed:
        emit_upload_given_up(outcome.round, upload.model, upload.detail, run_name, run_id)
    details = "; ".join(f"{u.model}: {u.detail}" for u in failed)
    return Failed(
        name=UPLOAD_GIVEN_UP_STATE,
        message=f"round {outcome.round}: uploads given up for {len(failed)} model(s): {details}",
    )


def _wait_for_open_round(client: NumeraiClient, minutes: int, poll_seconds: float) -> RoundInfo | None:
    """The current round, checked again every `poll_seconds` for `minutes` until it is open."""
    deadline = time.monotonic() + minutes * 60
    while True:
        info = current_round(client)
        if (info is not None and info.is_open()) or time.monotonic() + poll_seconds > deadline:
            return info
        get_run_logger().info("round not open yet; checking again in %.0f s", poll_seconds)
        time.sleep(poll_seconds)


def _name_runs(round_number: int | None, models: list[str], uploading: bool) -> None:
    """A per-round parent run still carrying its placeholder name is named after what it does,
    e.g. round-1002-my_model (or ...-dry-run), and this subflow after it; under the weekly run
    both keep their names."""
    parent = flow_run.get_parent_flow_run_id()
    if parent is None or parent_run_name() != round_placeholder_name(parent):
        return
    name = round_run_name(round_number, models, uploading)
    rename_run(name, parent)
    rename_run(child_run_name(name, "submission"))


def connect(config: NumerflowConfig) -> tuple[NumeraiClient, dict[str, str]]:
    """A client built from the credentials block named in the config, and the block's model ids.

    The block is loaded in the flow's own process and its secrets go straight into the
    client: they are never a parameter, a task result or a log line.
    """
    credentials = load_credentials(config.training.numerai.credentials_block)
    client = make_client(
        config, credentials.public_id.get_secret_value(), credentials.secret_key.get_secret_value()
    )
    return client, credentials.model_ids
