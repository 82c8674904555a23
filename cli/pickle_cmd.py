"""`numerflow pickle`: build and check a slot's model-upload pickle without uploading it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.main import ConfigDirOption, SetOption, _config_or_exit, _overrides_or_exit

MIB = 1024**2


def pickle(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="Model slot to build for (repeatable) [default: the model_upload slots, else every slot]",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the pickle [default: beside the slot's manifest]"),
    ] = None,
    config_dir: ConfigDirOption = None,
    set_: SetOption = None,
) -> None:
    """Build each slot's pickle from its latest trained run and check it in Numerai's runtime (the
    image's library versions, 1 CPU, 4 GB, 10 minutes) on the newest live file here. Uploads nothing.

    Exits 1 naming the reason when a check fails.
    """
    from numerflow.hosted.check import PickleRefused
    from numerflow.hosted.runtime import RuntimeBuildError
    from numerflow.hosted.slot import pickle_slot
    from numerflow.numerai.images import UnsupportedPython
    from numerflow.runs.manifest import load_trained_run
    from numerflow.runs.plan import submit_plan_for_round

    config = _config_or_exit(config_dir, _overrides_or_exit(config_dir, list(set_ or [])))
    plan = submit_plan_for_round(config, model or None)
    slots = [s for s in plan.slots if s.hosted] if not model else plan.slots
    failed = False
    for slot in slots or plan.slots:
        if slot.trained_dir is None:
            message = f"{slot.name}: no trained run in {plan.work_dir}: run `numerflow run` first"
            typer.secho(message, err=True, fg=typer.colors.RED)
            failed = True
            continue
        run = load_trained_run(slot.trained_dir)
        try:
            checked = pickle_slot(run, plan.data_dir, out)
        except (PickleRefused, RuntimeBuildError, UnsupportedPython, FileNotFoundError) as exc:
            typer.secho(f"{slot.name}: not uploadable: {exc}", err=True, fg=typer.colors.RED)
            failed = True
            continue
        record, check = checked.record, checked.check
        peak = f"{check.peak_memory_bytes / MIB:,.0f} MiB" if check.peak_memory_bytes else "not measured"
        typer.echo(
            f"{slot.name}: {record.path} ({record.bytes / MIB:,.1f} MiB, {record.models} LightGBM models, "
            f"{record.docker_image}, trained run {record.trained_run_id})\n"
            f"  checked in Numerai's runtime ({check.limits}): {check.seconds:.1f} s in all, load "
            f"{check.load_seconds:.1f} s, predict {check.predict_seconds:.1f} s on {check.rows:,} live rows, "
            f"peak memory {peak}\n"
            f"  agrees with numerflow's own predictions: max |difference| {check.max_abs_diff:.2g}"
        )
    if failed:
        raise typer.Exit(code=1)
