"""`numerflow scores`: read each submitting model's live Numerai scores, keep them, and print
them next to the validation record of the trained run that submitted each round."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

ModelOption = Annotated[
    list[str] | None,
    typer.Option("--model", help="A model to show (repeat for several) [default: every submitting slot]"),
]


def scores(
    models: ModelOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    fetch: Annotated[
        bool, typer.Option("--fetch/--no-fetch", help="Read Numerai first, or print only what is stored")
    ] = True,
    config_dir: Annotated[
        Path | None,
        typer.Option("--config-dir", help="Folder with the YAML config files [default: ./config]"),
    ] = None,
) -> None:
    """Live CORR, MMC and BMC per round next to validation; exits 1 when a fetch failed."""
    import json

    from cli.main import _config_or_exit

    config = _config_or_exit(config_dir, {})
    try:
        report, errors = _gather(config, models, fetch)
    except ValueError as exc:  # a damaged history file: the message names it and the fix
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from None
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        for name, entry in report.items():
            typer.echo("\n".join(_lines(name, entry)))
    if errors:
        raise typer.Exit(code=1)


def _gather(config: Any, models: list[str] | None, fetch: bool) -> tuple[dict, dict[str, str]]:
    """Each model's stored figures and rounds (fetched first when `fetch`), and the fetch errors."""
    from flows.live import scores_client, submitting_models
    from numerflow.live.compare import round_table
    from numerflow.live.fetch import refresh
    from numerflow.live.report import model_summary
    from numerflow.live.store import load_history

    names = submitting_models(config, models)
    work_dir = config.training.work_dir
    errors: dict[str, str] = {}
    if fetch:
        client, ids = scores_client(config, names)
        errors = {m: "no model id: add it to the credentials block" for m in names if m not in ids}
        errors |= refresh(client, work_dir, ids, config.training.scoring.live.fetch_rounds)[1]
    report = {}
    for name in names:
        history = load_history(work_dir, name)
        report[name] = {
            "summary": model_summary(history),
            "rounds": [entry.model_dump() for entry in round_table(history)],
            "error": errors.get(name),
        }
    return report, errors


def _lines(name: str, entry: dict) -> list[str]:
    from numerflow.live.report import KEY_LABELS, status_lines

    lines = status_lines({name: entry["summary"]})[1:]
    if entry["error"]:
        lines.append(f"  not fetched (stored history shown): {entry['error']}")
    labels = " ".join(f"{label:>16}" for label in KEY_LABELS.values())
    lines.append(f"  {'round':>6} {'trained run':<34} {labels}  validation CORR")
    for row in reversed(entry["rounds"]):
        cells = []
        for key in KEY_LABELS:
            live = row["scores"].get(key)
            text = "-" if live is None or live["value"] is None else f"{live['value']:+.4f}"
            text += "" if live is None else (" final" if live["final"] else f" day {live['day']}")
            cells.append(f"{text:>16}")
        corr, std = row["validation"]["corr_mean"], row["validation"]["corr_std"]
        promised = "-" if corr is None else f"{corr:+.4f}" + ("" if std is None else f" ± {std:.4f}")
        lines.append(f"  {row['round']:>6} {row['trained_run_id'] or '-':<34} {' '.join(cells)}  {promised}")
    return lines
