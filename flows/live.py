"""The live-scores step of the per-round flow, after the submission: read each submitting slot's
live scores back from Numerai, keep them, publish them next to validation, and alert once per
incident when a model decays. It never changes the round's outcome: any failure here is logged
and the stored history stays as it was."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from numerflow.config.models import NumerflowConfig
from numerflow.live.compare import round_table
from numerflow.live.decay import DecayAlert, check_decay
from numerflow.live.fetch import refresh
from numerflow.live.report import draw_chart, live_markdown
from numerflow.live.store import ModelHistory, load_history
from numerflow.numerai.blocks import load_credentials
from numerflow.numerai.client import NumeraiClient, make_client
from numerflow.numerai.errors import NumeraiError
from numerflow.ops.alerts import LIVE_DECAY, emit_live_decay, notify_directly, server_delivers
from numerflow.runs.plan import select_slots

ARTIFACT_KEY = "numerflow-live-scores"
logger = logging.getLogger("numerflow.live")


def submitting_models(config: NumerflowConfig, only: list[str] | None = None) -> list[str]:
    """The Numerai models of the slots that submit, by predictions or by an uploaded model."""
    return [slot.name for slot in select_slots(config, only) if slot.submit]


def scores_client(config: NumerflowConfig, models: list[str]) -> tuple[NumeraiClient, dict[str, str]]:
    """A client and each model's id: from the credentials block, then the account, then the id
    stored with the model's history (scores are public, so a stored id needs no key)."""
    settings = config.training.numerai
    known: dict[str, str] = {}
    public_id = secret_key = None
    try:
        credentials = load_credentials(settings.credentials_block)
        known = dict(credentials.model_ids)
        public_id = credentials.public_id.get_secret_value()
        secret_key = credentials.secret_key.get_secret_value()
    except Exception as exc:  # no block, or no server: stored ids may still do
        logger.warning("live scores: credentials block not read (%s); using stored model ids", exc)
    client = make_client(settings, public_id, secret_key)
    missing = [m for m in models if not known.get(m)]
    if missing and public_id:
        try:
            account = client.model_ids()
            known.update({m: account[m] for m in missing if m in account})
        except NumeraiError as exc:  # refused key, Numerai down: stored ids may still do
            logger.warning("live scores: the account's model ids not read (%s)", exc)
    for model in models:
        known.setdefault(model, load_history(config.training.work_dir, model).model_id)
    return client, {m: known[m] for m in models if known.get(m)}


def live_scores_step(config: NumerflowConfig, models: list[str]) -> None:
    """Fetch, store, publish and check each model; never raises."""
    run_logger = get_run_logger()
    try:
        work_dir, live = config.training.work_dir, config.training.scoring.live
        client, ids = scores_client(config, models)
        for model in sorted(set(models) - set(ids)):
            run_logger.warning("live scores of %s: no model id (add it to the credentials block)", model)
        histories, errors = refresh(client, work_dir, ids, live.fetch_rounds)
        for model, error in errors.items():
            run_logger.warning("live scores of %s not fetched, stored history kept: %s", model, error)
        publish_live_scores(list(histories.values()))
        for model, history in histories.items():
            try:  # an alert that cannot go out now is tried again at the next round
                check_decay(work_dir, model, round_table(history), live.window, live.alert_sigma,
                            send=lambda alert: deliver_decay_alert(config, alert),
                            now=lambda: datetime.now(UTC))  # fmt: skip
            except Exception:
                run_logger.exception("decay check of %s failed", model)
    except Exception:
        run_logger.exception("live scores step failed; the round's submission is unaffected")


def publish_live_scores(histories: list[ModelHistory]) -> None:
    create_markdown_artifact(
        live_markdown(histories, draw_chart),
        key=ARTIFACT_KEY,
        description="each model's live Numerai scores by round next to its validation record",
    )


def deliver_decay_alert(config: NumerflowConfig, alert: DecayAlert) -> None:
    """Through the `numerflow-live-decay` automation; directly to the alert block when the
    server would not deliver it, as the run-failed alert does."""
    subject, body = alert.subject(), alert.body()
    emit_live_decay(alert.model, alert.score, subject, body)
    block = config.alerts.block
    if block is not None and not server_delivers(LIVE_DECAY):
        notify_directly(block, subject, body)
    logger.warning("%s: %s", subject, body)
