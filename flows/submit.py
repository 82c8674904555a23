"""The per-round submission flow: predict the open round with the latest trained run and
upload once per model. Safe to trigger repeatedly: a model that already submitted this round
from this trained run is skipped (`force` submits again); no open round ends cleanly."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.submission import SubmissionOutcome, submission_flow
from numerflow.config import load_config
from tasks.gpu import probe_gpu


@flow(name="numerflow-submit")
def submit_flow(
    round_number: int | None = None,
    dry_run: bool = False,
    force: bool = False,
    config_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> SubmissionOutcome:
    config = load_config(config_dir, overrides)
    probe_gpu()
    return submission_flow(config, None, round_number, dry_run=dry_run, force=force)
