"""The submission subflow, shared by the weekly flow and the per-round flow:

    credentials (block) -> current round -> live data for the round -> live predictions
    -> validated submission file -> one upload per model and round (ledger) -> artifacts

Offline (no download, no upload) it predicts the local live file and records a dry run.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run
from prefect.states import Failed
from pydantic import BaseModel

from flows.expected import fails_cleanly
from flows.naming import parent_run_name, rename_run
from numerflow.config.models import NumeraiConfig
from numerflow.hosted.check import PickleRefused
from numerflow.numerai.blocks import load_credentials
from numerflow.numerai.client import NumeraiClient, RoundInfo, make_client
from numerflow.numerai.errors import NumeraiError
from numerflow.numerai.live_data import live_path
from numerflow.numerai.model_ids import resolve_model_ids
from numerflow.numerai.rounds import round_state, wait_for_open_round
from numerflow.numerai.uploads import UploadOutcome
from numerflow.ops.alerts import UPLOAD_GIVEN_UP_STATE, emit_round_started, emit_upload_given_up
from numerflow.runs.manifest import load_trained_run
from numerflow.runs.names import child_run_name, round_placeholder_name, round_run_name
from numerflow.runs.plan import SubmitPlan, SubmitSlot
from numerflow.submit.outcome import SlotSubmission, SubmissionOutcome
from tasks.evaluation import publish_submissions
from tasks.numerai import (
    HostedWatch,
    PickleJob,
    UploadJob,
    current_round,
    download_live_data,
    predict_live_task,
    upload_model_pickle,
    upload_submissions,
    watch_hosted_runs,
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
    plan: SubmitPlan,
    round_number: int | None = None,
    dry_run: bool = False,
    force: bool = False,
    wait_for_round_minutes: int = 0,
    poll_seconds: float = 30.0,
    hosted_check_minutes: float | None = None,
) -> SubmissionOutcome:
    """`hosted_check_minutes`: watch Numerai's runs of the model_upload slots' pickles for the open
    round this long after it opened (the per-round flow); None: do not watch (the weekly flow)."""
    uploading = plan.numerai.upload and not dry_run
    client, model_ids = account(plan, uploading)
    asking = client is not None and round_number is None
    wait = RoundWait(minutes=wait_for_round_minutes, poll_seconds=poll_seconds)
    info = wait_for_round(wait, client) if asking else None
    target = RoundTarget.of(plan, round_number, info, asking)
    if target.outcome is not None:  # no round open and no pickle to upload for the coming ones
        return target.outcome
    _name_runs(target.round_number, plan.submitting_models(), uploading)
    if uploading and target.round_number is not None:
        emit_round_started(target.round_number, target.plan.predicting_models())
    entries, uploads = submit_slots(target.job(model_ids, uploading, force), client)
    watch = target.hosted_watch(info, hosted_check_minutes, poll_seconds) if uploading else None
    if watch is not None and client is not None:
        uploads += watch_hosted_runs(watch, client)
    outcome = submission_outcome(target, entries, uploads, uploading)
    publish_submissions(outcome)
    return outcome


def account(plan: SubmitPlan, uploading: bool) -> tuple[NumeraiClient | None, dict[str, str]]:
    """A client (when anything talks to Numerai) and each submitting model's id: from the
    credentials block, the plan, and, when uploading, checked against the account. In the flow
    itself, not a task: the secrets never become a task's input or result."""
    settings = plan.numerai
    client, known_ids = connect(settings) if uploading or settings.download else (None, {})
    models = plan.submitting_models()
    known_ids = {**known_ids, **{s.submit_as: s.model_id for s in plan.slots if s.submit_as and s.model_id}}
    model_ids = (
        resolve_model_ids(models, known_ids, client) if uploading and client else dict.fromkeys(models, "")
    )
    return client, model_ids


class RoundWait(BaseModel):
    minutes: float
    poll_seconds: float


@task(name="wait-for-open-round", cache_policy=NO_CACHE)
def wait_for_round(wait: RoundWait, client: NumeraiClient) -> RoundInfo | None:
    """The open round, asked again every `poll_seconds` for up to `minutes` while none is open."""
    logger = get_run_logger()
    return wait_for_open_round(lambda: current_round(client), wait.minutes, wait.poll_seconds, logger.info)


class RoundTarget(BaseModel):
    """What this submission is for: the round (None: offline, the local live file) and the slots;
    with no round open only the slots whose pickle Numerai predicts the coming rounds with, or,
    without any, the outcome to end with."""

    plan: SubmitPlan
    round_number: int | None
    no_round: str = ""  # why no round is open, when none is
    outcome: SubmissionOutcome | None = None

    @classmethod
    def of(
        cls, plan: SubmitPlan, round_number: int | None, info: RoundInfo | None, asked: bool
    ) -> RoundTarget:
        if not asked or (info is not None and info.is_open()):
            return cls(plan=plan, round_number=info.number if asked and info else round_number)
        logger = get_run_logger()
        no_round = f"no round is open for submissions right now ({round_state(info)})"
        hosted = [s for s in plan.slots if s.hosted]
        if not hosted:
            logger.info("%s; nothing to submit", no_round)
            outcome = SubmissionOutcome(
                status="no-open-round", round=info.number if info else None, message=no_round
            )
            return cls(plan=plan, round_number=None, no_round=no_round, outcome=outcome)
        # Numerai predicts the coming rounds with the pickle: it is built, checked and uploaded now
        logger.info("%s; uploading the pickles of %s", no_round, [s.name for s in hosted])
        return cls(plan=plan.model_copy(update={"slots": hosted}), round_number=None, no_round=no_round)

    def job(self, model_ids: dict[str, str], uploading: bool, force: bool) -> SubmitJob:
        return SubmitJob(
            plan=self.plan,
            model_ids=model_ids,
            round_number=self.round_number,
            uploading=uploading,
            force=force,
        )

    def hosted_watch(
        self, info: RoundInfo | None, check_minutes: float | None, poll_seconds: float
    ) -> HostedWatch | None:
        """Numerai's runs of the pickles to watch, when asked to and a round is open."""
        watched = [s.submit_as for s in self.plan.slots if s.hosted and s.submit_as]
        if check_minutes is None or info is None or not info.is_open() or not watched:
            return None
        return HostedWatch(
            work_dir=self.plan.work_dir,
            models=watched,
            round=info,
            check_minutes=check_minutes,
            poll_seconds=poll_seconds,
        )


class SubmitJob(BaseModel):
    """The slots to submit for one round, as whom, and how."""

    plan: SubmitPlan
    model_ids: dict[str, str]
    round_number: int | None
    uploading: bool
    force: bool


def submit_slots(
    job: SubmitJob, client: NumeraiClient | None
) -> tuple[list[SlotSubmission], list[UploadOutcome]]:
    """Each slot predicted, written and uploaded; a slot that fails is recorded with its reason
    (and a failed upload for its model) and does not stop the others' uploads. The live file
    of each data version is fetched once, for the first slot that needs it."""
    logger = get_run_logger()
    live_files: dict[str, Path] = {}  # data version -> live file
    entries, uploads = [], []
    for slot in job.plan.slots:
        try:
            entry, slot_uploads = _submit_slot(job, slot, client, live_files)
        except Exception as exc:  # one slot's failure must not stop the others' uploads
            reason = f"{type(exc).__name__}: {exc}"
            logger.error("model slot %s: no submission: %s", slot.name, reason)
            entry = SlotSubmission(slot=slot.name, submit_as=slot.submit_as, error=reason)
            # A refused pickle is no upload given up: the slot fails and the failed-run alert says why
            slot_uploads = (
                [UploadOutcome(model=slot.submit_as, status="failed", detail=f"slot {slot.name}: {reason}")]
                if slot.submit_as and job.uploading and not isinstance(exc, PickleRefused)
                else []
            )
        entries.append(entry)
        uploads += slot_uploads
    return entries, uploads


def submission_outcome(
    target: RoundTarget, entries: list[SlotSubmission], uploads: list[UploadOutcome], uploading: bool
) -> SubmissionOutcome:
    if any(u.status == "failed" for u in uploads):
        status = "upload-failed"
    elif any(e.error is not None for e in entries):
        status = "slot-failed"
    else:
        status = "no-open-round" if target.no_round else "submitted" if uploading else "dry-run"
    return SubmissionOutcome(
        status=status, round=target.round_number, slots=entries, uploads=uploads, message=target.no_round
    )


def _submit_slot(
    job: SubmitJob, slot: SubmitSlot, client: NumeraiClient | None, live_files: dict[str, Path]
) -> tuple[SlotSubmission, list[UploadOutcome]]:
    """Predict the round with the slot's trained run, write its file, upload it to its model."""
    plan, round_number, uploading = job.plan, job.round_number, job.uploading
    if slot.trained_dir is None:
        raise NumeraiError(
            f"model slot {slot.name} has no trained run in {plan.work_dir}: run the weekly flow first"
        )
    run = load_trained_run(slot.trained_dir)
    version = run.data_version  # predict live data of the version it trained on
    if version not in live_files:
        live_files[version] = _live_file(plan, client, version, round_number, run.feature_names)
    suffix = f"r{round_number}" if round_number is not None else "local"
    live = predict_live_task(run, live_files[version], slot.trained_dir / f"live_{suffix}.parquet")
    submission = write_submission_task(live, slot.submission_path)
    model_ids = {slot.submit_as: job.model_ids[slot.submit_as]} if slot.submit_as else {}
    upload = UploadJob(
        work_dir=plan.work_dir,
        run=run,
        submission=submission,
        model_ids=model_ids,
        round_number=round_number,
        force=job.force,
        dry_run=not uploading,
    )
    if slot.hosted and slot.submit_as:  # Numerai refuses API predictions for it: upload the pickle instead
        uploads = upload_model_pickle(PickleJob(**dict(upload), live_file=live_files[version]), client)
    else:
        uploads = upload_submissions(upload, client)
    entry = SlotSubmission(
        slot=slot.name, submit_as=slot.submit_as, trained_run_id=run.run_id, submission=submission
    )
    return entry, uploads


def _live_file(
    plan: SubmitPlan,
    client: NumeraiClient | None,
    version: str,
    round_number: int | None,
    features: list[str],
) -> Path:
    version_dir = plan.data_dir / version
    if client is not None and plan.numerai.download:  # no round: the current live file, for a pickle's check
        return download_live_data(version_dir, client, round_number, features)
    live_file = live_path(version_dir, round_number)
    return live_file if live_file.is_file() else live_path(version_dir, None)


def upload_failure_state(outcome: SubmissionOutcome) -> State | None:
    """For uploads given up: one `numerflow.upload.given-up` event per model (the alert) and
    the run's final state, Failed but named UploadGivenUp so the failed-run alert stays quiet.
    A slot that failed without an upload to give up (a dry run, a pickle the check refused) fails
    the run plainly, naming the slot: the failed-run alert."""
    failed = [u for u in outcome.uploads if u.status == "failed"]
    if not failed:
        broken = outcome.failed_slots()
        if broken:
            return Failed(
                message="model slot(s) could not be submitted: "
                + "; ".join(f"{s.slot}: {s.error}" for s in broken)
            )
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


def _name_runs(round_number: int | None, models: list[str], uploading: bool) -> None:
    """A per-round parent run still carrying its placeholder name is named after what it does,
    e.g. round-1002-my_model (or ...-dry-run), and this subflow after it; under the weekly run
    both keep their names."""
    parent = flow_run.get_parent_flow_run_id()
    if parent is None or parent_run_name() != round_placeholder_name(parent):
        return
    name = round_run_name(round_number, models, uploading)  # models: the Numerai models it submits as
    rename_run(name, parent)
    rename_run(child_run_name(name, "submission"))


def connect(settings: NumeraiConfig) -> tuple[NumeraiClient, dict[str, str]]:
    """A client built from the credentials block named in the settings, and the block's model ids.

    The block is loaded in the flow's own process and its secrets go straight into the
    client: they are never a parameter, a task result or a log line.
    """
    credentials = load_credentials(settings.credentials_block)
    client = make_client(
        settings, credentials.public_id.get_secret_value(), credentials.secret_key.get_secret_value()
    )
    return client, credentials.model_ids
