"""`numerflow`: the command-line face of the project."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from numerflow.config import ConfigError, default_config_dir, load_config, parse_overrides

# Offline by default: no telemetry from a local or temporary Prefect server.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

app = typer.Typer(help="Hands-off Numerai Classic runs orchestrated by Prefect.", no_args_is_help=True)

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config key: FILE.KEY=VALUE, e.g. training.folds.n_folds=3"),
]
ConfigDirOption = Annotated[
    Path | None,
    typer.Option("--config-dir", help="Folder with the YAML config files [default: ./config]"),
]


@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", help="Folder to write <version>/*.parquet into")],
    eras: Annotated[int, typer.Option(help="Eras across train and validation")] = 160,
    rows_per_era: Annotated[int, typer.Option(help="Rows in each era")] = 200,
    features: Annotated[int, typer.Option(help="Number of int8 feature columns")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes the same files")] = 0,
    version: Annotated[str, typer.Option(help="Data version folder name")] = "v5.2",
) -> None:
    """Write Numerai-format synthetic data with a planted signal."""
    from numerflow.synth import generate

    spec = _spec_or_exit(eras=eras, rows_per_era=rows_per_era, features=features, seed=seed, version=version)
    directory = generate(out, spec)
    typer.echo(f"wrote {directory} (train, validation, live, features.json)")


@app.command()
def run(config_dir: ConfigDirOption = None, set_: SetOption = None) -> None:
    """Run the weekly flow on the configured data."""
    overrides = _overrides_or_exit(config_dir, set_ or [])
    _run_weekly(config_dir, overrides)


@app.command()
def demo(
    work_dir: Annotated[Path, typer.Option(help="Folder for the synthetic data, runs and submission")] = Path(
        "numerflow-demo"
    ),
    eras: Annotated[int, typer.Option(help="Eras across train and validation")] = 400,
    rows_per_era: Annotated[int, typer.Option(help="Rows in each era")] = 250,
    features: Annotated[int, typer.Option(help="Number of int8 feature columns")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    config_dir: ConfigDirOption = None,
    set_: SetOption = None,
) -> None:
    """Generate synthetic data and run the weekly flow on it: no credentials, no network."""
    from numerflow.synth import generate

    config = _config_or_exit(config_dir, {})
    work_dir = work_dir.resolve()
    demo_overrides = {
        "training.data.dir": str(work_dir / "data"),
        "training.work_dir": str(work_dir / "runs"),
        "training.submission.path": str(work_dir / "submission.csv"),
    }
    overrides = demo_overrides | _overrides_or_exit(config_dir, set_ or [])
    spec = _spec_or_exit(
        eras=eras,
        rows_per_era=rows_per_era,
        features=features,
        seed=seed,
        version=config.training.data.version,
    )
    typer.echo(f"generating synthetic Numerai data in {work_dir / 'data'} ...")
    generate(work_dir / "data", spec)
    _run_weekly(config_dir, overrides)


def _run_weekly(config_dir: Path | None, overrides: dict[str, object]) -> None:
    from flows.weekly import weekly_flow

    result = weekly_flow(config_dir=str(config_dir) if config_dir else None, overrides=overrides)
    typer.echo("")
    typer.echo(f"run:            {result.run_dir}")
    typer.echo(f"submission:     {result.submission_path}")
    corr, sharpe = result.validation_corr_mean, result.validation_corr_sharpe
    typer.echo(f"validation CORR: mean {corr:.4f}, sharpe {sharpe:.2f}")


def _overrides_or_exit(config_dir: Path | None, pairs: list[str]) -> dict[str, object]:
    try:
        overrides = parse_overrides(pairs)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    _config_or_exit(config_dir, overrides)
    return overrides


def _config_or_exit(config_dir: Path | None, overrides: dict[str, object]):
    try:
        return load_config(config_dir or default_config_dir(), overrides)
    except ConfigError as exc:
        raise _fail(str(exc)) from None


def _spec_or_exit(**kwargs: object):
    from numerflow.synth import SynthSpec

    try:
        return SynthSpec(**kwargs)  # type: ignore[arg-type]
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)
