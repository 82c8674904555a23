"""Naming the current flow run through Prefect's runtime (the formats are in numerflow.runs.names)."""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.runtime import flow_run


def parent_run_name() -> str | None:
    parent = flow_run.get_parent_flow_run_id()
    if parent is None:
        return None
    with get_client(sync_client=True) as client:
        return client.read_flow_run(parent).name


def rename_run(name: str, run_id: str | None = None) -> None:
    """Rename a flow run (the current one by default); no-op outside a run."""
    run_id = run_id or flow_run.get_id()
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(run_id, name=name)
