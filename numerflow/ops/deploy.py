"""`numerflow setup`: block types, the process work pool and both deployments, idempotently.

Each deployment carries, as its `version`, a hash of everything setup decides (entrypoint,
source folder, schedule, parameters and their schema, job variables, tags, limits), so a
second `numerflow setup` with nothing changed touches nothing, and any change redeploys.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.exceptions import ObjectNotFound
from prefect.schedules import Cron
from prefect.settings import get_current_settings
from prefect.utilities.callables import parameter_schema

from numerflow.config.models import NumerflowConfig, ScheduleConfig
from numerflow.numerai.blocks import NumeraiCredentials
from numerflow.ops.schedule import next_runs
from numerflow.ops.worker import venv_command

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class DeploymentSpec:
    flow_name: str
    name: str
    entrypoint: str
    schedule: ScheduleConfig
    parameters: dict[str, Any]
    tags: list[str]
    description: str


@dataclass
class SetupReport:
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    worker_command: str = ""
    next_runs: dict[str, datetime | None] = field(default_factory=dict)  # deployment -> first start


def deployment_specs(config: NumerflowConfig, config_dir: Path) -> list[DeploymentSpec]:
    schedules = config.deployments
    common = {"config_dir": str(config_dir.resolve())}
    return [
        DeploymentSpec(
            flow_name="numerflow-weekly",
            name="weekly",
            entrypoint="flows/weekly.py:weekly_flow",
            schedule=schedules.weekly,
            parameters=common,
            tags=["numerflow", "weekly", "training"],
            description="Weekly training, scoring and submission (numerflow).",
        ),
        DeploymentSpec(
            flow_name="numerflow-submit",
            name="round",
            entrypoint="flows/submit.py:submit_flow",
            schedule=schedules.round,
            parameters={**common, "wait_for_round_minutes": schedules.round.wait_for_round_minutes},
            tags=["numerflow", "round", "submission"],
            description="Per-round submission with the latest trained run (numerflow).",
        ),
    ]


def setup(config: NumerflowConfig, config_dir: Path, source: Path = PROJECT_ROOT) -> SetupReport:
    report = SetupReport()
    _register_blocks(report)
    _ensure_work_pool(config, report)
    now = datetime.now(UTC)
    for spec in deployment_specs(config, config_dir):
        _ensure_deployment(config, spec, source, report)
        report.next_runs[f"{spec.flow_name}/{spec.name}"] = next(iter(next_runs(spec.schedule, now)), None)
    api_url = get_current_settings().api.url or "http://127.0.0.1:4200/api"
    report.worker_command = worker_command(api_url, config_dir)
    return report


def worker_command(api_url: str, config_dir: Path, windows: bool = os.name == "nt") -> str:
    """The worker's command line as it runs in this install: this environment's `numerflow
    worker` by its full path (no `uv run`, any folder), which starts the Prefect worker for the
    configured pool and concurrency so that it stops on SIGTERM (numerflow.ops.worker). In
    PowerShell on Windows, in POSIX shell syntax elsewhere."""
    numerflow = venv_command("numerflow")
    if windows:
        return (
            f"$env:PREFECT_API_URL = {_ps_quote(api_url)}; "
            f"& {_ps_quote(str(numerflow))} worker --config-dir {_ps_quote(str(config_dir.resolve()))}"
        )
    return (
        f"PREFECT_API_URL={shlex.quote(api_url)} "
        f"{shlex.quote(str(numerflow))} worker --config-dir {shlex.quote(str(config_dir.resolve()))}"
    )


def _ps_quote(text: str) -> str:
    """A PowerShell single-quoted string: nothing inside is expanded; ' is doubled."""
    return "'" + text.replace("'", "''") + "'"


def _register_blocks(report: SetupReport) -> None:
    with get_client(sync_client=True) as client:
        try:
            existing = client.read_block_type_by_slug(NumeraiCredentials.get_block_type_slug())
            schema = client.get_most_recent_block_schema_for_block_type(existing.id)
        except ObjectNotFound:
            schema = None
    if schema is not None and schema.checksum == NumeraiCredentials._calculate_schema_checksum():
        report.unchanged.append("block type numerai-credentials")
        return
    NumeraiCredentials.register_type_and_schema()
    report.changed.append("block type numerai-credentials registered")


def _ensure_work_pool(config: NumerflowConfig, report: SetupReport) -> None:
    name, limit = config.deployments.work_pool, config.deployments.concurrency
    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=name, type="process", concurrency_limit=limit))
            report.changed.append(f"work pool {name} created (process, {limit} run(s) at a time)")
            return
        if pool.type != "process":
            raise ValueError(
                f"deployments.yaml: work_pool: {name!r} exists with type {pool.type!r}, not process"
            )
        if pool.concurrency_limit != limit:
            client.update_work_pool(name, WorkPoolUpdate(concurrency_limit=limit))
            report.changed.append(f"work pool {name}: concurrency limit {pool.concurrency_limit} -> {limit}")
            return
    report.unchanged.append(f"work pool {name}")


def _ensure_deployment(
    config: NumerflowConfig, spec: DeploymentSpec, source: Path, report: SetupReport
) -> None:
    flow = Flow.from_source(source=str(source), entrypoint=spec.entrypoint)
    job_variables = _job_variables(config)
    fingerprint = _fingerprint(config, spec, source, flow, job_variables)
    label = f"deployment {spec.flow_name}/{spec.name}"
    with get_client(sync_client=True) as client:
        try:
            existing = client.read_deployment_by_name(f"{spec.flow_name}/{spec.name}")
        except ObjectNotFound:
            existing = None
    if existing is not None and existing.version == fingerprint:
        report.unchanged.append(label)
        return
    # to_deployment + apply is what flow.deploy() does for a source folder, minus its console
    # output (a table per deployment and the "consider .serve" note; a process pool is the design).
    flow.to_deployment(
        name=spec.name,
        work_pool_name=config.deployments.work_pool,
        schedules=[Cron(spec.schedule.cron, timezone=spec.schedule.timezone, active=spec.schedule.active)],
        concurrency_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
        ),
        job_variables=job_variables,
        parameters=spec.parameters,
        description=spec.description,
        tags=spec.tags,
        version=fingerprint,
    ).apply(work_pool_name=config.deployments.work_pool)
    when = f"{spec.schedule.cron} {spec.schedule.timezone}"
    report.changed.append(f"{label} {'updated' if existing else 'created'} ({when})")


def _job_variables(config: NumerflowConfig) -> dict[str, Any]:
    # Heartbeats every minute let the zombie automation (alerts.yaml) spot a dead worker.
    env = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "60"}
    if config.deployments.cuda_visible_devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = config.deployments.cuda_visible_devices
    return {"env": env}


def _fingerprint(
    config: NumerflowConfig, spec: DeploymentSpec, source: Path, flow: Flow, job_variables: dict[str, Any]
) -> str:
    payload = {
        "spec": {**spec.__dict__, "schedule": spec.schedule.model_dump()},
        "source": str(source.resolve()),
        "pool": config.deployments.work_pool,
        "job_variables": job_variables,
        "schema": parameter_schema(flow).model_dump(),
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return f"numerflow-{digest[:16]}"
