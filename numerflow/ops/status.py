"""`numerflow status`: what an owner checks on Monday morning, gathered from the Prefect server
and the work folder. Secrets are never read: only whether the credentials block exists.

Problems that would make the next round fail (server down, no worker online, no credentials
while the config downloads or uploads, alert automations missing or paused) are listed in
`problems`; the command exits non-zero when there are any.
"""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterParentTaskRunId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import ObjectNotFound
from prefect.settings import get_current_settings

from numerflow.config.models import NumerflowConfig
from numerflow.hosted.status import hosted_status
from numerflow.live.report import live_status
from numerflow.numerai import ledger
from numerflow.numerai.blocks import NumeraiCredentials
from numerflow.ops.alerts import LIVE_DECAY, MISSED_ROUND, RUN_FAILED, UPLOAD_GIVEN_UP, ZOMBIE
from numerflow.ops.deploy import deployment_specs
from numerflow.ops.disk import disk_status
from numerflow.ops.heartbeat import heartbeat_status
from numerflow.runs.manifest import latest_slot_run, manifest_fix, manifest_problem, read_manifest
from numerflow.runs.plan import select_slots
from numerflow.score.results import STACK

AUTOMATIONS = [RUN_FAILED, UPLOAD_GIVEN_UP, MISSED_ROUND, ZOMBIE, LIVE_DECAY]
# The server counts a worker offline after this many missed heartbeats.
MISSED_HEARTBEATS = 3
DEFAULT_HEARTBEAT_SECONDS = 30.0


def worker_online(last_heartbeat: datetime | None, interval_s: float | None, now: datetime) -> bool:
    if last_heartbeat is None:
        return False
    return now - last_heartbeat <= timedelta(
        seconds=MISSED_HEARTBEATS * (interval_s or DEFAULT_HEARTBEAT_SECONDS)
    )


def collect_status(config: NumerflowConfig, config_dir: Path, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    url = get_current_settings().api.url or None
    status: dict[str, Any] = {"server": {"url": url, "reachable": False}, "problems": []}
    # Without PREFECT_API_URL, Prefect would start a temporary server: nothing to report on.
    with get_client(sync_client=True) if url else nullcontext() as client:
        healthy = client is not None and client.api_healthcheck() is None
        status["server"]["reachable"] = healthy
        if healthy:
            status["work_pool"] = _work_pool(client, config, now)
            status["credentials"] = _credentials(client, config)
            status["alerts"] = _alerts(client, config)
            status["latest_weekly_run"] = _latest_run(client, "numerflow-weekly")
            status["latest_round_run"] = _latest_run(client, "numerflow-submit")
            status["next_runs"] = _next_runs(client, config, config_dir)
    status["latest_training"] = latest_training(config)
    status["latest_round"] = _latest_round(config)
    status["heartbeat"] = heartbeat_status(config.alerts.heartbeat, config.training.work_dir)
    status["disk"] = disk_status(config.training)
    status["live_scores"] = live_status(config.training.work_dir)
    status["hosted"] = hosted_status(config)
    status["problems"] = problems(status, config)
    return status


def problems(status: dict[str, Any], config: NumerflowConfig) -> list[str]:
    """What would make the next round fail, each with what to do."""
    if not status["server"]["reachable"]:
        return [f"Prefect server at {status['server']['url']} does not answer: start it (docs/operations.md)"]
    found = []
    pool = status["work_pool"]
    if not pool["exists"]:
        found.append(f"work pool {pool['name']} does not exist: run `uv run numerflow setup`")
    elif not any(w["online"] for w in pool["workers"]):
        found.append(f"no worker online for pool {pool['name']}: start the command `numerflow setup` printed")
    credentials = status["credentials"]
    if credentials["needed"] and not credentials["present"]:
        found.append(
            f"credentials block numerai-credentials/{credentials['block']} missing: "
            f"run `uv run numerflow setup credentials --block-name {credentials['block']}`"
        )
    alerts = status["alerts"]
    broken = [name for name, state in alerts["automations"].items() if state != "enabled"]
    if broken:
        found.append(
            f"alert automations missing or paused: {', '.join(broken)}: "
            "run `uv run numerflow setup alerts --url URL`"
        )
    found += [
        f"model slot {name}: {trained['problem']}"
        for name, trained in (status.get("latest_training") or {}).items()
        if trained.get("problem")
    ]
    return found


def _work_pool(client: SyncPrefectClient, config: NumerflowConfig, now: datetime) -> dict[str, Any]:
    name = config.deployments.work_pool
    try:
        pool = client.read_work_pool(name)
    except ObjectNotFound:
        return {"name": name, "exists": False, "workers": []}
    workers = [
        {
            "name": w.name,
            "last_heartbeat": w.last_heartbeat_time.isoformat() if w.last_heartbeat_time else None,
            "online": worker_online(w.last_heartbeat_time, w.heartbeat_interval_seconds, now),
        }
        for w in client.read_workers_for_work_pool(name)
    ]
    return {
        "name": name,
        "exists": True,
        "paused": pool.is_paused,
        "concurrency_limit": pool.concurrency_limit,
        "workers": workers,
    }


def _credentials(client: SyncPrefectClient, config: NumerflowConfig) -> dict[str, Any]:
    settings = config.training.numerai
    block = settings.credentials_block
    try:
        document = client.read_block_document_by_name(
            block, NumeraiCredentials.get_block_type_slug(), include_secrets=False
        )
        models = sorted((document.data.get("model_ids") or {}).keys())
    except ObjectNotFound:
        document, models = None, []
    return {
        "block": block,
        "present": document is not None,
        "models": models,
        "needed": settings.download or settings.upload,
    }


def _alerts(client: SyncPrefectClient, config: NumerflowConfig) -> dict[str, Any]:
    block = config.alerts.block
    present = None
    if block is not None:
        slug, name = block.split("/", 1)
        try:
            client.read_block_document_by_name(name, slug, include_secrets=False)
            present = True
        except ObjectNotFound:
            present = False
    states = {}
    for name in AUTOMATIONS:
        found = client.read_automations_by_name(name)
        states[name] = "missing" if not found else "enabled" if found[0].enabled else "paused"
    return {"block": block, "block_present": present, "automations": states}


def _latest_run(client: SyncPrefectClient, flow_name: str) -> dict[str, Any] | None:
    runs = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(not_any_=[StateType.SCHEDULED])),
            parent_task_run_id=FlowRunFilterParentTaskRunId(is_null_=True),  # not a subflow
        ),
        sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        limit=1,
    )
    if not runs:
        return None
    run = runs[0]
    started = run.start_time or run.expected_start_time
    return {
        "name": run.name,
        "state": run.state.name if run.state else None,
        "started": started.isoformat() if started else None,
        "message": run.state.message if run.state and run.state.is_failed() else None,
    }


def _next_runs(client: SyncPrefectClient, config: NumerflowConfig, config_dir: Path) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for spec in deployment_specs(config, config_dir):
        label = f"{spec.flow_name}/{spec.name}"
        try:
            deployment = client.read_deployment_by_name(label)
        except ObjectNotFound:
            found[label] = None
            continue
        scheduled = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            limit=1,
        )
        found[label] = scheduled[0].expected_start_time.isoformat() if scheduled else None
    return found


def latest_training(config: NumerflowConfig) -> dict[str, Any] | None:
    """Each configured slot's newest trained run and its validation CORR (None: never trained).
    A manifest that cannot be read is a problem to report, never a crash of `numerflow status`."""
    slots: dict[str, dict[str, Any]] = {}
    for slot in select_slots(config):
        slot_dir = latest_slot_run(config.training.work_dir, slot.name)
        if slot_dir is None or not (slot_dir / "manifest.json").is_file():
            continue
        try:
            manifest = read_manifest(slot_dir)
        except (OSError, ValueError) as exc:  # ValidationError is a ValueError
            problem = f"{slot_dir / 'manifest.json'}: {manifest_problem(exc)}"
            slots[slot.name] = {
                "run_id": slot_dir.parents[1].name,
                "validation_corr": None,
                "problem": f"{problem}; {manifest_fix(slot.name)}",
            }
            continue
        validation = manifest.metrics.summary.validation.get(STACK)
        slots[slot.name] = {
            "run_id": manifest.run_id,
            "finished_at": manifest.finished_at,
            "data_version": manifest.data.version,
            "validation_corr": None if validation is None else validation.mean,
        }
    return slots or None


def _latest_round(config: NumerflowConfig) -> dict[str, Any] | None:
    entries = ledger.entries(config.training.work_dir)
    if not entries:
        return None
    newest = max(e.round for e in entries)
    uploads = {e.model: e.submission_id for e in entries if e.round == newest}
    return {"round": newest, "uploads": uploads}
