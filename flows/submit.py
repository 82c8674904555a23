"""The per-round submission flow: predict the open round with each model slot's latest trained
run and upload once per model. Safe to trigger repeatedly: a model that already submitted this round
from this trained run is skipped (`force` submits again). If the round is not open yet it
keeps checking for `wait_for_round_minutes`; no open round then ends cleanly."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.expected import fails_cleanly
from flows.hooks import alert_owner, heartbeat_fail, heartbeat_start, heartbeat_success
from flows.live import live_scores_step, submitting_models
from flows.submission import SubmissionOutcome, round_placeholder, submission_flow, upload_failure_state
from numerflow.config import load_config
from numerflow.config.parameters import Models, RoundNumber, WaitMinutes, overrides_from
from numerflow.runs.plan import submit_plan_for_round
from tasks.gpu import probe_gpu

# Rounds close an hour after they open: stop well inside the window.
ROUND_FLOW_TIMEOUT_SECONDS = 50 * 60


@flow(
    name="numerflow-submit",
    flow_run_name=round_placeholder,
    timeout_seconds=ROUND_FLOW_TIMEOUT_SECONDS,
    on_completion=[heartbeat_success],
    on_failure=[alert_owner, heartbeat_fail],
    on_crashed=[alert_owner, heartbeat_fail],
)
@fails_cleanly
def submit_flow(
    round_number: RoundNumber = None,
    dry_run: bool = False,
    force: bool = False,
    models: Models = None,
    wait_for_round_minutes: WaitMinutes = 0,
    overrides: dict[str, Any] | None = None,
    config_dir: str | None = None,
) -> SubmissionOutcome:
    """Submit each model slot's predictions from its latest trained run for the open round.

    Args:
        round_number: round to submit for (default: the open round)
        dry_run: write and validate the submission but do not upload
        force: upload even if this model already submitted this round from this run
        models: model slots to submit (default: all in training.yaml); a name not configured
            there is a slot with the default recipe
        wait_for_round_minutes: keep checking this long for the round to open
        overrides: any other config key, as {"FILE.KEY": value}
        config_dir: folder with the YAML config files (default: ./config)
    """
    config = load_config(config_dir, overrides_from(dict(locals()), overrides))
    heartbeat_start("round", config)
    probe_gpu()
    outcome = submission_flow(
        submit_plan_for_round(config, models),
        round_number,
        dry_run=dry_run,
        force=force,
        wait_for_round_minutes=wait_for_round_minutes,
        poll_seconds=config.deployments.round.poll_seconds,
        hosted_check_minutes=config.deployments.round.hosted_check_minutes,
    )
    failure = upload_failure_state(outcome)  # its alerts go out before the scores are read
    if config.training.numerai.download or config.training.numerai.upload:  # offline: no Numerai
        live_scores_step(config, submitting_models(config, models))
    return failure or outcome
