"""The flows' own alert path: on failure or crash, notify directly when the server won't.

Prefect runs these hooks in the flow's process (Failed) or in the worker (Crashed, after the
flow's process died). They never raise: a broken alert path must not hide the run's own error.
"""

from __future__ import annotations

import logging

from prefect import Flow
from prefect.client.schemas.objects import FlowRun, State

from numerflow.config import load_config
from numerflow.config.parameters import overrides_from
from numerflow.ops.alerts import (
    RUN_FAILED,
    UPLOAD_GIVEN_UP,
    UPLOAD_GIVEN_UP_STATE,
    failure_message,
    notify_directly,
    server_delivers,
)

logger = logging.getLogger("numerflow.alerts")


def alert_owner(flow: Flow, flow_run: FlowRun, state: State) -> None:
    try:
        parameters = dict(flow_run.parameters or {})
        config = load_config(
            parameters.get("config_dir"), overrides_from(parameters, parameters.get("overrides"))
        )
        alerts = config.alerts
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
