"""`numerflow wake-times`: when a sleeping Windows PC is woken for the scheduled runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from numerflow.config import ConfigError, default_config_dir, load_config
from numerflow.ops.wake import WAKE_MINUTES_BEFORE, wake_times


def wake_times_command(
    config_dir: Annotated[
        Path | None,
        typer.Option("--config-dir", help="Folder with the YAML config files [default: ./config]"),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (what numerflow-services.ps1 reads)")
    ] = False,
) -> None:
    """Times (UTC) a few minutes before each scheduled run of deployments.yaml, by weekday."""
    try:
        deployments = load_config(config_dir or default_config_dir(), {}).deployments
    except ConfigError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from None
    times = wake_times(deployments, datetime.now(UTC))
    if as_json:
        typer.echo(json.dumps([time.model_dump() for time in times]))
        return
    typer.echo(f"Wake {WAKE_MINUTES_BEFORE} minutes before each scheduled run (UTC):")
    for time in times:
        typer.echo(f"  {time.at}  {', '.join(time.days)}")
