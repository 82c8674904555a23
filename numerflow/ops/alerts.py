"""Alerts that reach the owner, one message per incident.

Two ways a message can go out:
- the Prefect server's automations (created by `numerflow setup alerts`), which also see what
  no flow process can report: a run killed outright, a worker that died, a round missed;
- the flows' own failure hooks, which send only when the server would not deliver: no such
  automation, the automation paused, or the server's triggers service switched off.

Incidents and their automation:
- a weekly or per-round run ends Failed or Crashed -> `numerflow-run-failed`;
- uploads for a model are given up (retries exhausted or credentials refused): the run emits
  `numerflow.upload.given-up` per model and ends in the Failed state named `UploadGivenUp`,
  which `numerflow-run-failed` does not match -> `numerflow-upload-given-up`;
- a round run started (`numerflow.round.started`) with no `numerflow.upload.accepted` for a
  model within `missed_round_after_minutes` -> `numerflow-missed-round`;
- a model's live CORR or MMC decayed: the per-round flow emits `numerflow.live.decay` once
  per incident -> `numerflow-live-decay`;
- a running flow without a heartbeat for `zombie_after_minutes` -> `numerflow-zombie-runs`
  marks it Crashed, which `numerflow-run-failed` then reports (also a run still alive after
  the server was down that long: the message names the state of the event it reports).
Messages carry names, rounds, models, errors and links; never credentials.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from prefect.automations import Automation
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events import EventTrigger, SendNotification, emit_event
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import Posture
from prefect.settings import get_current_settings

from numerflow.config.models import AlertsConfig

logger = logging.getLogger("numerflow.alerts")

FLOWS = ["numerflow-weekly", "numerflow-submit"]
RUN_FAILED = "numerflow-run-failed"
UPLOAD_GIVEN_UP = "numerflow-upload-given-up"
MISSED_ROUND = "numerflow-missed-round"
ZOMBIE = "numerflow-zombie-runs"
LIVE_DECAY = "numerflow-live-decay"
UPLOAD_GIVEN_UP_STATE = "UploadGivenUp"
EVENT_ROUND_STARTED = "numerflow.round.started"
EVENT_UPLOAD_ACCEPTED = "numerflow.upload.accepted"
EVENT_UPLOAD_GIVEN_UP = "numerflow.upload.given-up"
EVENT_LIVE_DECAY = "numerflow.live.decay"
# Longer than a concurrency lease's renewal (225 s into Prefect's 300 s lease) and than the 15
# minutes a restarted server may hold a state change, so a run's second end is not reported.
ONE_MESSAGE_PER_RUN_WITHIN = timedelta(hours=1)


_EVENT_STATE = "{{ event.resource['prefect.state-name'] }}"
_EVENT_MESSAGE = "{{ event.resource['prefect.state-message'] }}"


@dataclass
class AlertsReport:
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


# -- events the flows emit --------------------------------------------------------------------
def _resource(round_number: int, model: str) -> dict[str, str]:
    return {
        "prefect.resource.id": f"numerflow.round.{round_number}.model.{model}",
        "prefect.resource.name": f"round {round_number}, model {model}",
    }


def emit_round_started(round_number: int, models: list[str]) -> None:
    for model in models:
        emit_event(EVENT_ROUND_STARTED, resource=_resource(round_number, model),
                   payload={"round": round_number, "model": model})  # fmt: skip


def emit_upload_accepted(round_number: int, model: str, submission_id: str | None) -> None:
    emit_event(EVENT_UPLOAD_ACCEPTED, resource=_resource(round_number, model),
               payload={"round": round_number, "model": model, "submission_id": submission_id})  # fmt: skip


def emit_upload_given_up(
    round_number: int | None, model: str, reason: str, run_name: str, run_id: str
) -> None:
    emit_event(
        EVENT_UPLOAD_GIVEN_UP,
        resource=_resource(round_number or 0, model),
        payload={
            "round": round_number,
            "model": model,
            "reason": reason,
            "run_name": run_name,
            "run_id": run_id,
        },
    )


def emit_live_decay(model: str, score: str, subject: str, body: str) -> None:
    emit_event(
        EVENT_LIVE_DECAY,
        resource={
            "prefect.resource.id": f"numerflow.model.{model}.live.{score}",
            "prefect.resource.name": f"model {model}, live {score}",
        },
        payload={"model": model, "score": score, "subject": subject, "body": body},
    )


# -- the automations ----------------------------------------------------------------------------
def automations(config: AlertsConfig, block_document_id: Any) -> list[Automation]:
    link = f"{ui_base(config.ui_url)}/runs/flow-run/"
    ours = {"prefect.resource.role": "flow", "prefect.resource.name": FLOWS}
    return [
        Automation(
            name=RUN_FAILED,
            description="A numerflow run ended Failed or Crashed.",
            # Once per run: a run marked Crashed by the zombie automation while its process
            # lives on is Crashed again by its own engine when its concurrency lease, revoked
            # by that marking or forgotten by a restarted server, fails to renew.
            trigger=EventTrigger(
                expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
                match={"prefect.resource.id": "prefect.flow-run.*"},
                match_related=ours,
                for_each={"prefect.resource.id"},
                posture=Posture.Reactive,
                threshold=1,
                within=ONE_MESSAGE_PER_RUN_WITHIN,
            ),
            actions=[
                # The state named in the event, not the run's state when the message is sent:
                # after a server restart the server may hold the event for up to 15 minutes
                # (PRECEDING_EVENT_LOOKBACK in prefect/server/events/ordering), and a run marked
                # Crashed by the zombie automation may have ended Completed meanwhile.
                SendNotification(
                    block_document_id=block_document_id,
                    subject="numerflow: {{ flow_run.name }} " + _EVENT_STATE,
                    body=(
                        "numerflow run {{ flow_run.name }} ({{ flow.name }}) ended " + _EVENT_STATE + ".\n"
                        "Error: " + _EVENT_MESSAGE + "\n"
                        f"{link}" + "{{ flow_run.id }}"
                    ),
                )
            ],
        ),
        _on_event(
            UPLOAD_GIVEN_UP,
            "numerflow gave up uploading for a model.",
            EVENT_UPLOAD_GIVEN_UP,
            "numerflow.round.*",
            SendNotification(
                block_document_id=block_document_id,
                subject=(
                    "numerflow: upload given up for {{ event.payload.model }} "
                    "in round {{ event.payload.round }}"
                ),
                body=(
                    "numerflow gave up uploading round {{ event.payload.round }} for model "
                    "{{ event.payload.model }}.\nReason: {{ event.payload.reason }}\n"
                    "Run {{ event.payload.run_name }}: " + link + "{{ event.payload.run_id }}"
                ),
            ),
        ),
        Automation(
            name=MISSED_ROUND,
            description="A round started with no accepted upload for a model in time.",
            trigger=EventTrigger(
                after={EVENT_ROUND_STARTED},
                expect={EVENT_UPLOAD_ACCEPTED},
                match={"prefect.resource.id": "numerflow.round.*"},
                for_each={"prefect.resource.id"},
                posture=Posture.Proactive,
                threshold=1,
                within=timedelta(minutes=config.missed_round_after_minutes),
            ),
            actions=[
                SendNotification(
                    block_document_id=block_document_id,
                    subject="numerflow: missed round ({{ event.resource.name }})",
                    body=(
                        "No upload was accepted for {{ event.resource.name }} within "
                        f"{config.missed_round_after_minutes:g} minutes of the round run starting: "
                        "the round is missed unless it is submitted before it closes."
                    ),
                )
            ],
        ),
        _on_event(
            LIVE_DECAY,
            "A model's live Numerai scores fell below what validation promised.",
            EVENT_LIVE_DECAY,
            "numerflow.model.*",
            SendNotification(
                block_document_id=block_document_id,
                subject="{{ event.payload.subject }}",
                body="{{ event.payload.body }}",
            ),
        ),
        Automation(
            name=ZOMBIE,
            description=(
                "A numerflow run sent no heartbeat in time: its worker or machine died or the server was down"
            ),
            trigger=EventTrigger(
                after={"prefect.flow-run.heartbeat"},
                expect={
                    "prefect.flow-run.heartbeat",
                    "prefect.flow-run.Completed",
                    "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled",
                    "prefect.flow-run.Crashed",
                },
                match={"prefect.resource.id": "prefect.flow-run.*"},
                match_related=ours,
                for_each={"prefect.resource.id"},
                posture=Posture.Proactive,
                threshold=1,
                within=timedelta(minutes=config.zombie_after_minutes),
            ),
            actions=[
                ChangeFlowRunState(
                    state=StateType.CRASHED,
                    message=(
                        f"no heartbeat for {config.zombie_after_minutes:g} minutes: "
                        "the worker or machine died, or the Prefect server was down that long"
                    ),
                )
            ],
        ),
    ]


def _on_event(
    name: str, description: str, event: str, resources: str, action: SendNotification
) -> Automation:
    """An automation that sends a message for every `event` the flows emit about `resources`."""
    return Automation(
        name=name,
        description=description,
        trigger=EventTrigger(
            expect={event}, match={"prefect.resource.id": resources}, posture=Posture.Reactive, threshold=1
        ),
        actions=[action],
    )


def setup_alerts(config: AlertsConfig, block_document_id: Any) -> AlertsReport:
    """Create the automations, or update those that differ; equal ones are left alone."""
    report = AlertsReport()
    with get_client(sync_client=True) as client:
        for wanted in automations(config, block_document_id):
            existing = client.read_automations_by_name(wanted.name)
            if existing and _same(existing[0], wanted):
                report.unchanged.append(f"automation {wanted.name}")
                continue
            for old in existing:
                client.delete_automation(old.id)
            wanted.create()
            report.changed.append(f"automation {wanted.name} {'updated' if existing else 'created'}")
    return report


def _same(existing: Any, wanted: Automation) -> bool:
    fields = ("name", "description", "enabled", "trigger", "actions")
    have = existing.model_dump(mode="json", include=set(fields))
    want = wanted.model_dump(mode="json", include=set(fields))
    have["trigger"].pop("id", None)
    want["trigger"].pop("id", None)
    return have == want


# -- the flows' own path ---------------------------------------------------------------------
def server_delivers(automation_name: str) -> bool:
    """Would the server send this incident's message? The automation must exist, be enabled,
    and the server's triggers service must be on. Unknown (server unreachable) counts as no."""
    try:
        with get_client(sync_client=True) as client:
            found = client.read_automations_by_name(automation_name)
            settings = client.request("GET", "/admin/settings").json()
    except Exception as exc:
        logger.warning("cannot ask the Prefect server about automations (%s); alerting directly", exc)
        return False
    triggers_on = settings.get("server", {}).get("services", {}).get("triggers", {}).get("enabled", True)
    return bool(found) and found[0].enabled and bool(triggers_on)


def ui_base(ui_url: str | None) -> str:
    """The UI address for links: alerts.yaml's `ui_url`, else the UI of the server this process
    talks to (PREFECT_UI_URL, or PREFECT_API_URL without /api), so links follow the server's port."""
    return (ui_url or get_current_settings().ui_url or "http://127.0.0.1:4200").rstrip("/")


def notify_directly(block: str, subject: str, body: str) -> None:
    Block.load(block).notify(body=body, subject=subject)


def failure_message(
    run_name: str, flow_name: str, state_name: str, message: str | None, run_id: str, ui_url: str | None
) -> tuple[str, str]:
    subject = f"numerflow: {run_name} {state_name}"
    body = (
        f"numerflow run {run_name} ({flow_name}) ended {state_name}.\n"
        f"Error: {message or '(no message)'}\n{ui_base(ui_url)}/runs/flow-run/{run_id}"
    )
    return subject, body
