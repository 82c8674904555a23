"""`numerflow`: the command-line face of the project."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from cli.prune_cmd import prune
from cli.scores_cmd import scores
from cli.wake_cmd import wake_times_command
from numerflow.config import ConfigError, default_config_dir, load_config, parse_overrides

# Offline by default: no telemetry from a local or temporary Prefect server.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Without a server, `run` and `demo` start Prefect's temporary one; its 20 s start-up limit was
# seen to run out on a busy 2-core machine ("Timed out while attempting to connect to ephemeral
# Prefect API server"), failing the run before any work.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

DEMO_DATA_VERSION = "v5.2"

app = typer.Typer(help="Hands-off Numerai Classic runs orchestrated by Prefect.", no_args_is_help=True)
app.command("wake-times")(wake_times_command)
app.command()(prune)

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config key: FILE.KEY=VALUE, e.g. training.folds.n_folds=3"),
]
ConfigDirOption = Annotated[
    Path | None,
    typer.Option("--config-dir", help="Folder with the YAML config files [default: ./config]"),
]
ProgressOption = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        envvar="NUMERFLOW_PROGRESS",
        help="Progress bars for downloads, binning and training on stderr "
        "(default: only when it is a terminal)",
    ),
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
    from numerflow.data.synth import generate

    spec = _spec_or_exit(eras=eras, rows_per_era=rows_per_era, features=features, seed=seed, version=version)
    directory = generate(out, spec)
    typer.echo(f"wrote {directory} (train, validation, live, features.json, benchmark and meta-model files)")


@app.command()
def run(config_dir: ConfigDirOption = None, set_: SetOption = None, progress: ProgressOption = None) -> None:
    """Run the weekly flow on the configured data."""
    overrides = _overrides_or_exit(config_dir, set_ or [])
    _run_weekly(config_dir, overrides, progress)


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
    progress: ProgressOption = None,
) -> None:
    """Generate synthetic data and run the weekly flow on it: no credentials, no network."""
    from numerflow.data.synth import generate

    config = _config_or_exit(config_dir, {})
    work_dir = work_dir.resolve()
    version = config.training.data.version
    version = DEMO_DATA_VERSION if version == "latest" else version
    demo_overrides = {
        "training.data.dir": str(work_dir / "data"),
        "training.data.version": version,
        "training.work_dir": str(work_dir / "runs"),
        "training.submission.path": str(work_dir / "submission.csv"),
        "training.numerai.download": False,  # the demo never touches the network
        "training.numerai.upload": False,
    }
    overrides = demo_overrides | _overrides_or_exit(config_dir, set_ or [])
    spec = _spec_or_exit(
        eras=eras,
        rows_per_era=rows_per_era,
        features=features,
        seed=seed,
        version=version,
        reference_files=False,  # as offline: MMC and BMC say why they are missing, never fake figures
    )
    typer.echo(f"generating synthetic Numerai data in {work_dir / 'data'} ...")
    generate(work_dir / "data", spec)
    _run_weekly(config_dir, overrides, progress)


def _run_weekly(config_dir: Path | None, overrides: dict[str, object], progress: bool | None) -> None:
    from cli.progress import terminal_progress
    from flows.weekly import weekly_flow
    from numerflow.report.console import validation_lines
    from numerflow.score.results import STACK

    # Expected failures (flows.expected) and slot failures both end in a Failed state whose
    # message says what to fix: one line here, the run's log has the details.
    with terminal_progress(progress):
        state = weekly_flow(
            config_dir=str(config_dir) if config_dir else None, overrides=overrides, return_state=True
        )
    if not state.is_completed():
        typer.secho(f"error: the weekly run failed: {state.message}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=1)
    result = state.result()
    typer.echo("")
    typer.echo(f"run:            {result.run_dir}")
    if result.submission is not None:
        _echo_submission(result.submission)
    for name, slot in result.slots.items():
        label = "" if len(result.slots) == 1 else f" ({name})"
        for line in validation_lines(slot.summary.validation[STACK], slot.validation_metrics, label):
            typer.echo(line)


@app.command()
def submit(
    round_number: Annotated[
        int | None, typer.Option("--round", help="Round to submit for [default: the open round]")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Write and validate, but do not upload")] = False,
    force: Annotated[bool, typer.Option("--force", help="Upload even if this round was submitted")] = False,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="Submit only this model slot (repeatable) [default: every slot]"),
    ] = None,
    wait_minutes: Annotated[
        int | None,
        typer.Option(
            "--wait-minutes",
            help="Keep checking this long for the round to open "
            "[default: deployments.round.wait_for_round_minutes]",
        ),
    ] = None,
    config_dir: ConfigDirOption = None,
    set_: SetOption = None,
    progress: ProgressOption = None,
) -> None:
    """Predict the open round with each slot's latest trained run and upload once per model."""
    pairs = list(set_ or [])
    if wait_minutes is not None:  # an override, so the config's bounds check it
        pairs.append(f"deployments.round.wait_for_round_minutes={wait_minutes}")
    overrides = _overrides_or_exit(config_dir, pairs)
    wait = _config_or_exit(config_dir, overrides).deployments.round.wait_for_round_minutes
    from cli.progress import terminal_progress
    from flows.submit import submit_flow

    try:
        with terminal_progress(progress):
            outcome = submit_flow(
                round_number=round_number,
                dry_run=dry_run,
                force=force,
                models=model or None,
                wait_for_round_minutes=wait,
                config_dir=str(config_dir) if config_dir else None,
                overrides=overrides,
            )
    except Exception as exc:
        typer.secho(f"error: the submission failed: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=1) from None
    _echo_submission(outcome)


@app.command()
def gpu(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    assume_free_vram: Annotated[
        str | None,
        typer.Option(
            "--assume-free-vram", help="Preview the decision for a card with this much free, e.g. 6GiB"
        ),
    ] = None,
    assume_shape: Annotated[
        str | None,
        typer.Option(
            "--assume-shape",
            help="Preview it for ROWSxFEATURES training rows (after era_stride), e.g. 2.7e6x2376",
        ),
    ] = None,
    config_dir: ConfigDirOption = None,
) -> None:
    """Show the GPU probe, whether LightGBM can use the GPU, the VRAM estimate and where a run would train."""
    import json

    from numerflow.gpu.report import gpu_report, parse_size, report_lines
    from numerflow.gpu.shape import parse_shape
    from numerflow.runs.device import configured_shape

    config = _config_or_exit(config_dir, {})
    try:
        assumed = parse_size(assume_free_vram) if assume_free_vram is not None else None
    except ValueError as exc:
        raise _fail(f"--assume-free-vram: {exc}") from None
    try:
        shape = parse_shape(assume_shape) if assume_shape is not None else None
    except ValueError as exc:
        raise _fail(f"--assume-shape: {exc}") from None
    report = gpu_report(config, *configured_shape(config, shape), assumed)
    typer.echo(json.dumps(report, indent=2) if as_json else "\n".join(report_lines(report)))
    decision = report["decision"]
    if isinstance(decision, dict) and decision.get("choice") is None:
        raise typer.Exit(code=1)


app.command()(scores)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    config_dir: ConfigDirOption = None,
) -> None:
    """Server, worker, credentials, alerts, latest runs, next runs and caches, on one screen.

    Exits 1 when something would make the next round fail.
    """
    import json

    from numerflow.ops.status import collect_status
    from numerflow.ops.status_report import status_lines

    directory = (config_dir or default_config_dir()).resolve()
    report = collect_status(_config_or_exit(directory, {}), directory)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        for line in status_lines(report, datetime.now(UTC)):
            typer.echo(line)
    if report["problems"]:
        raise typer.Exit(code=1)


@app.command()
def worker(
    name: Annotated[
        str | None,
        typer.Option("--name", help="Worker name in the UI and status [default: host name]"),
    ] = None,
    config_dir: ConfigDirOption = None,
) -> None:
    """Start the Prefect worker for deployments.yaml's pool and concurrency (keep it running).

    It stops cleanly on SIGTERM or Ctrl-C, however it was started.
    """
    from numerflow.ops.worker import run_worker, worker_argv

    deployments = _config_or_exit(config_dir, {}).deployments
    run_worker(worker_argv(deployments.work_pool, deployments.concurrency, name or socket.gethostname()))


setup_app = typer.Typer(
    help="Set up the Prefect side: with no sub-command, block types, the work pool and both deployments.",
    invoke_without_command=True,
)
app.add_typer(setup_app, name="setup")


@setup_app.callback()
def setup_all(ctx: typer.Context, config_dir: ConfigDirOption = None) -> None:
    """Register block types, create the work pool and deploy both flows (idempotent)."""
    if ctx.invoked_subcommand is not None:
        return
    from numerflow.ops.deploy import setup
    from numerflow.ops.schedule import describe_start

    directory = (config_dir or default_config_dir()).resolve()
    config = _config_or_exit(directory, {})
    _server_or_exit("numerflow setup")
    report = setup(config, directory)
    for line in report.changed:
        typer.echo(f"changed:   {line}")
    for line in report.unchanged:
        typer.echo(f"unchanged: {line}")
    typer.echo("")
    typer.echo("Next scheduled runs:")
    now = datetime.now(UTC)
    for deployment, when in report.next_runs.items():
        typer.echo(f"  {deployment:<26}{describe_start(when, now) if when else 'schedule paused'}")
    typer.echo("")
    typer.echo("Start the worker on the GPU machine (keep it running; see docs/operations.md):")
    typer.echo(f"  {report.worker_command}")


@setup_app.command("alerts")
def setup_alerts_command(
    url: Annotated[
        str | None,
        typer.Option(
            "--url", envvar="NUMERFLOW_ALERT_URL", help="Webhook URL for the block (Slack, Teams, ...)"
        ),
    ] = None,
    heartbeat_round: Annotated[
        str | None, typer.Option("--heartbeat-round", help="Ping URL of the external check for round runs")
    ] = None,
    heartbeat_weekly: Annotated[
        str | None, typer.Option("--heartbeat-weekly", help="Ping URL of the external check for weekly runs")
    ] = None,
    config_dir: ConfigDirOption = None,
) -> None:
    """Create the notification block named in alerts.yaml (from --url) and the automations;
    record the external heartbeat checks' ping URLs in alerts.yaml.

    Without --url the existing block is kept. Re-running changes only what differs.
    """
    from numerflow.ops.alerts import setup_alerts
    from numerflow.ops.heartbeat import record_urls
    from numerflow.ops.notify_blocks import block_for_url, ensure_block, record_block

    directory = config_dir or default_config_dir()
    config = _config_or_exit(directory, {})
    pings = {k: u for k, u in (("round", heartbeat_round), ("weekly", heartbeat_weekly)) if u}
    if pings:
        try:
            changed = record_urls(directory / "alerts.yaml", pings)  # type: ignore[arg-type]
        except ValueError as exc:
            raise _fail(str(exc)) from None
        for kind in pings:
            typer.echo(f"{'changed:  ' if kind in changed else 'unchanged:'} alerts.yaml heartbeat.{kind}")
    block = config.alerts.block or (block_for_url(url) if url else None)
    if block is None and pings:
        typer.echo("unchanged: no notification block (pass --url WEBHOOK_URL for the Prefect automations)")
        return
    if block is None:
        raise _fail(
            "alerts.yaml: block is null: pass --url WEBHOOK_URL (Slack, Teams, Discord, any JSON webhook)"
        )
    _server_or_exit("numerflow setup alerts")  # the heartbeat URLs alone need no server
    try:
        block_id, created = ensure_block(block, url)
        if config.alerts.block is None:
            record_block(directory / "alerts.yaml", block)  # so the flows' own hooks use it too
            typer.echo(f"changed:   alerts.yaml block: {block}")
    except ValueError as exc:
        raise _fail(str(exc)) from None
    report = setup_alerts(config.alerts, block_id)
    typer.echo(f"{'changed:   block' if created else 'unchanged: block'} {block}")
    for line in report.changed:
        typer.echo(f"changed:   {line}")
    for line in report.unchanged:
        typer.echo(f"unchanged: {line}")


@setup_app.command("credentials")
def setup_credentials(
    block_name: Annotated[str, typer.Option("--block-name", help="Name of the Prefect block")] = "numerai",
    model: Annotated[
        list[str] | None, typer.Option("--model", help="NAME=ID or a bare model id to submit as (repeatable)")
    ] = None,
) -> None:
    """Save the Numerai API key into a Prefect block, from the environment or a prompt.

    Reads NUMERAI_PUBLIC_ID, NUMERAI_SECRET_KEY and NUMERAI_MODEL_ID: a bare model id (named
    from the account, as the old scripts had it) or NAME=ID[,NAME=ID...].
    """
    from numerflow.numerai.blocks import NumeraiCredentials
    from numerflow.numerai.client import NumeraiClient
    from numerflow.numerai.errors import NumeraiError
    from numerflow.numerai.model_ids import resolve_model_entries, split_model_ids

    _server_or_exit("numerflow setup credentials")
    public_id = os.environ.get("NUMERAI_PUBLIC_ID") or typer.prompt("Numerai public id", hide_input=True)
    secret_key = os.environ.get("NUMERAI_SECRET_KEY") or typer.prompt("Numerai secret key", hide_input=True)
    entries = [*(model or []), *split_model_ids(os.environ.get("NUMERAI_MODEL_ID", ""))]
    try:
        model_ids = resolve_model_entries(entries, NumeraiClient(public_id, secret_key).model_ids)
    except (ValueError, NumeraiError) as exc:
        raise _fail(str(exc)) from None
    NumeraiCredentials(public_id=public_id, secret_key=secret_key, model_ids=model_ids).save(
        block_name, overwrite=True
    )
    typer.echo(
        f"saved Numerai credentials to block numerai-credentials/{block_name} ({len(model_ids)} model ids)"
    )


def _echo_submission(outcome: object) -> None:
    from numerflow.submit.outcome import SubmissionOutcome

    assert isinstance(outcome, SubmissionOutcome)
    if outcome.status == "no-open-round":
        typer.echo(f"no submission: {outcome.message}")
        return
    for entry in outcome.slots:
        if entry.submission is None:
            typer.echo(f"submission:     {entry.slot}: none ({entry.error})")
            continue
        typer.echo(
            f"submission:     {entry.submission.path} ({outcome.status}, round {outcome.round or '-'})"
        )
    for upload in outcome.uploads:
        typer.echo(f"  {upload.model}: {upload.status} {upload.submission_id or upload.detail}")


def _server_or_exit(command: str) -> None:
    from numerflow.ops.server_check import TemporaryServerError, require_server

    try:
        require_server(command)
    except TemporaryServerError as exc:
        raise _fail(str(exc)) from None


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
    from numerflow.data.synth import SynthSpec

    try:
        return SynthSpec(**kwargs)  # type: ignore[arg-type]
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


from cli.pickle_cmd import pickle  # noqa: E402  (it uses the options defined above)

app.command("pickle")(pickle)
