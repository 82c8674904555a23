"""The flows' own alert path: on failure or crash, notify directly when the server won't; and
the external heartbeat's success and failure pings.

Prefect runs these hooks in the flow's process (Completed, Failed) or in the worker (Crashed,
after the flow's process died). They never raise: a broken alert path must not hide the run's
own error.
"""

from __future__ import annotations

import logging

from prefect import Flow
from prefect.client.schemas.objects import FlowRun, State

from numerflow.config import load_config
from numerflow.config.models import NumerflowConfig
from numerflow.config.parameters import overrides_from
from numerflow.ops.alerts import (
    RUN_FAILED,
    UPLOAD_GIVEN_UP,
    UPLOAD_GIVEN_UP_STATE,
    failure_message,
    notify_directly,
    server_delivers,
)
from numerflow.ops.heartbeat import Kind, ping

logger = logging.getLogger("numerflow.alerts")


HEARTBEAT_KINDS: dict[str, Kind] = {"numerflow-weekly": "weekly", "numerflow-submit": "round"}


def _run_config(flow_run: FlowRun) -> NumerflowConfig:
    parameters = dict(flow_run.parameters or {})
    return load_config(parameters.get("config_dir"), overrides_from(parameters, parameters.get("overrides")))


def heartbeat_start(kind: Kind, config: NumerflowConfig) -> None:
    """The run started: called first thing in the flow, once its config is read."""
    ping(config.alerts.heartbeat, kind, "start", config.training.work_dir)


def heartbeat_success(flow: Flow, flow_run: FlowRun, state: State) -> None:
    _heartbeat(flow, flow_run, state, failed=False)


def heartbeat_fail(flow: Flow, flow_run: FlowRun, state: State) -> None:
    _heartbeat(flow, flow_run, state, failed=True)


def _heartbeat(flow: Flow, flow_run: FlowRun, state: State, failed: bool) -> None:
    try:
        config = _run_config(flow_run)
        reason = f"{flow_run.name} {state.name}: {state.message or '(no message)'}" if failed else None
        kind = HEARTBEAT_KINDS[flow.name]
        ping(config.alerts.heartbeat, kind, "fail" if failed else "success", config.training.work_dir, reason)
    except Exception:
        logger.exception("could not send the heartbeat for run %s", flow_run.name)


def alert_owner(flow: Flow, flow_run: FlowRun, state: State) -> None:
    try:
        alerts = _run_config(flow_run).alerts
        if alerts.block is None:
            return
        incident = UPLOAD_GIVEN_UP if state.name == UPLOAD_GIVEN_UP_STATE else RUN_FAILED
        if server_delivers(incident):
            return  # the server's automation sends this one: one message per incident
        subject, body = failure_message(
            flow_run.name, flow.name, state.name, state.message, str(flow_run.id), alerts.ui_url
        )
        notify_directly(alerts.block, subject, body)
        logger.warning("alert sent directly (the server would not deliver it): %s", subject)
    except Exception:
        logger.exception("could not send the alert for run %s", flow_run.name)
