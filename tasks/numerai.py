"""Numerai I/O as tasks. Retries live inside the client (classified, with a time budget), so
these tasks set none of their own; they take the client, which holds secrets, and never cache."""

from __future__ import annotations

import logging
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from numerflow.config.models import DataConfig
from numerflow.hosted.slot import submit_hosted
from numerflow.hosted.watch import watch_round
from numerflow.numerai.client import NumeraiClient, RoundInfo
from numerflow.numerai.live_data import ensure_live_data, live_path
from numerflow.numerai.training_data import ensure_training_data, resolve_version
from numerflow.numerai.uploads import UploadOutcome
from numerflow.ops.alerts import emit_upload_accepted
from numerflow.runs.manifest import TrainedRun
from numerflow.submit.file import SubmissionRecord, make_submission
from numerflow.submit.live import LivePredictions, predict_live
from numerflow.submit.uploads import upload_for_models
from tasks.progress import on_terminal


@task(name="resolve-data-version", cache_policy=NO_CACHE)
def resolve_data_version(data: DataConfig, client: NumeraiClient | None) -> str:
    """The data version this run trains on: the configured one, or `latest` resolved (at Numerai,
    or offline the newest local folder)."""
    return resolve_version(data, client)


@task(name="download-training-data", cache_policy=NO_CACHE)
def download_training_data(version_dir: Path, client: NumeraiClient) -> list[str]:
    logger = get_run_logger()
    results = ensure_training_data(version_dir, client, lambda name: on_terminal(f"download {name}", "bytes"))
    for result in results:
        logger.info(
            "%s: %s (%s)", result.path.name, "downloaded" if result.downloaded else "kept", result.reason
        )
    return [str(r.path) for r in results if r.downloaded]


@task(name="current-round", cache_policy=NO_CACHE)
def current_round(client: NumeraiClient) -> RoundInfo | None:
    return client.current_round()


@task(name="download-live-data", cache_policy=NO_CACHE)
def download_live_data(
    version_dir: Path, client: NumeraiClient, round_number: int | None, feature_names: list[str]
) -> Path:
    bar = on_terminal(f"download {live_path(version_dir, round_number).name}", "bytes")
    result = ensure_live_data(version_dir, client, round_number, feature_names, bar)
    get_run_logger().info("live data for round %s: %s (%s)", round_number, result.path.name, result.reason)
    return result.path


class HostedWatch(BaseModel):
    """Numerai's runs of these models' pickles to watch for the open round, and how long."""

    work_dir: Path
    models: list[str]
    round: RoundInfo
    check_minutes: float
    poll_seconds: float


@task(name="watch-hosted-runs", cache_policy=NO_CACHE)
def watch_hosted_runs(watch: HostedWatch, client: NumeraiClient) -> list[UploadOutcome]:
    """Numerai's runs of the models' pickles for the open round; failed ones alert once."""
    outcomes = watch_round(
        client, watch.work_dir, watch.models, watch.round, watch.check_minutes, watch.poll_seconds
    )
    for outcome in outcomes:
        get_run_logger().log(
            logging.ERROR if outcome.status == "failed" else logging.INFO,
            "model %s: %s",
            outcome.model,
            outcome.detail,
        )
    return outcomes


@task(name="predict-live", task_run_name="predict-live-{run.slot}")
def predict_live_task(run: TrainedRun, live_file: Path, out_path: Path) -> LivePredictions:
    return predict_live(run, live_file, out_path)


@task(name="write-submission")
def write_submission_task(live: LivePredictions, target_path: Path) -> SubmissionRecord:
    record = make_submission(live, target_path)
    get_run_logger().info("submission %s: %d rows, validated", record.path, record.rows)
    return record


class UploadJob(BaseModel):
    """A slot's validated file (or, for a model_upload slot, its pickle) for its model and round."""

    work_dir: Path  # the upload ledger's
    run: TrainedRun
    submission: SubmissionRecord
    model_ids: dict[str, str]  # Numerai model -> id; empty: the slot submits as nobody
    round_number: int | None
    force: bool  # upload again what the ledger says this run already sent
    dry_run: bool


class PickleJob(UploadJob):
    live_file: Path  # the pickle is checked against the file's predictions before it goes


@task(name="upload-submissions", cache_policy=NO_CACHE)
def upload_submissions(job: UploadJob, client: NumeraiClient | None) -> list[UploadOutcome]:
    logger = get_run_logger()
    outcomes = upload_for_models(
        job.work_dir,
        None if job.dry_run else client,
        job.model_ids,
        job.submission,
        job.round_number,
        job.run.run_id,
        job.force,
        job.dry_run,
    )
    for outcome in outcomes:
        logger.info("%s: %s %s", outcome.model, outcome.status, outcome.submission_id or outcome.detail)
        if outcome.status in ("uploaded", "skipped") and job.round_number is not None:
            emit_upload_accepted(job.round_number, outcome.model, outcome.submission_id)
    return outcomes


@task(name="upload-model-pickle", cache_policy=NO_CACHE)
def upload_model_pickle(job: PickleJob, client: NumeraiClient | None) -> list[UploadOutcome]:
    """The slot's pickle built, checked against its live predictions and uploaded once for its
    model (a dry run: built and checked only)."""
    [(model, model_id)] = job.model_ids.items()
    sending = None if job.dry_run else client
    outcome = submit_hosted(
        sending, job.work_dir, job.run, model, model_id, job.live_file, job.submission.path, job.force
    )
    get_run_logger().info("%s: %s %s", model, outcome.status, outcome.submission_id or outcome.detail)
    return [outcome]
