"""`numerflow prune`: apply training.retention now, or list what it would remove."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from numerflow.runs.retention import apply_prune, plan_prune


def prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be removed; remove nothing")
    ] = False,
    config_dir: Annotated[
        Path | None,
        typer.Option("--config-dir", help="Folder with the YAML config files [default: ./config]"),
    ] = None,
) -> None:
    """Remove old run folders, live files and (if enabled) data versions per training.retention."""
    from cli.main import _config_or_exit, _fail

    training = _config_or_exit(config_dir, {}).training
    plan = plan_prune(training)
    try:
        removals = plan.removals if dry_run else apply_prune(plan)
    except OSError as exc:  # e.g. a file another process holds open on Windows
        raise _fail(
            f"could not remove {exc.filename}: {exc.strerror}; close what uses it and run again"
        ) from None
    verb = "would remove" if dry_run else "removed"
    for removal in removals:
        typer.echo(f"{verb} {removal.path} ({size_text(removal.bytes)}): {removal.reason}")
    total = sum(r.bytes for r in removals)
    typer.echo(f"{verb} {len(removals)} item(s), {size_text(total)} {'would be ' if dry_run else ''}freed")


def size_text(size: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:,.1f} {unit}"
    return f"{size} B"
