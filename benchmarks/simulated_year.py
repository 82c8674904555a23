"""A simulated year unattended: 52 weekly runs and 260 per-round runs on tiny data against the
loopback fake Numerai API and a real Prefect server, printing the disk used by each part at the
end of every simulated month. With `training.retention` and the shipped db_vacuum settings it
must level off: run folders after `weekly_runs` weeks, live files after `live_files` rounds, the
Prefect database once runs pass the vacuum's retention period.

The clock: the script walks simulated days (weekly run on Sundays, a round Tuesday to Saturday).
numerflow's own retention needs no clock (it goes by run order and round numbers); the Prefect
server stamps runs with the real time, so each simulated day is mapped to the real instant it
began, and Prefect's own vacuum functions (`prefect.server.services.db_vacuum`, the code the
server's service runs: events after 7 days, flow runs after the shipped 90) are called at the
end of each simulated day with their clock set so that their cutoff is the real instant the
simulated day a retention period earlier began.

    uv run python -m benchmarks.simulated_year [--weeks 52] [--root DIR]

`--root` keeps the folder (config/, data/, runs/, the Prefect home) for `numerflow prune
--dry-run --config-dir DIR/config` afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

SHIPPED_RETENTION_DAYS = (
    90  # PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD in the systemd unit and docs/operations.md
)
FIRST_ROUND = 1200
FIRST_DAY = date(2027, 1, 3)  # a Sunday
MIB = 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--root", type=Path, default=None, help="keep everything here (default: a temp dir)")
    parser.add_argument(
        "--retention-days",
        type=int,
        default=SHIPPED_RETENTION_DAYS,
        help="db_vacuum's retention period in simulated days (default: the shipped one)",
    )
    args = parser.parse_args()
    root = (args.root or Path(tempfile.mkdtemp(prefix="numerflow-year-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    # Before Prefect is imported: this process and the server share the home, the database and
    # the vacuum settings, so the vacuum functions called here act on the server's database.
    os.environ |= {
        "PREFECT_HOME": str(root / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "NUMERFLOW_PROGRESS": "0",
        "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "events,flow_runs",
        "PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD": str(args.retention_days * 86_400),
    }
    os.environ.pop("PREFECT_API_URL", None)
    started = time.perf_counter()
    try:
        simulate(root, args.weeks)
    finally:
        print(f"wall time: {time.perf_counter() - started:,.0f} s; folder: {root}")
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)


def simulate(root: Path, weeks: int) -> None:
    from numerflow.data.synth import SynthSpec, generate
    from tests.fake_numerai import FakeNumerai
    from tests.prefect_stack import PrefectStack, project_config

    synth = root / "synth"
    version_dir = generate(synth, SynthSpec(eras=60, rows_per_era=40, features=12, seed=3))
    fake = FakeNumerai(public_id="PUB-year", secret_key="SECRET-year")
    fake.add_dataset_dir(version_dir)
    fake.start()
    config_dir = project_config(root, {
        "training": {"data.dir": str(root / "data"), "work_dir": str(root / "runs"), "models": ["my_model"],
                     "submission.path": str(root / "submission.csv"), "data.era_stride": 1,
                     "folds.n_folds": 3, "folds.embargo_eras": 2, "final_model": "none",
                     "numerai.download": True, "numerai.upload": True, "numerai.api_url": fake.api_url,
                     "numerai.credentials_block": "year"},
        "program_input_params": {"params.n_estimators": 20, "params.learning_rate": 0.2},
    })  # fmt: skip
    (root / "prefect").mkdir(exist_ok=True)
    server = PrefectStack(root / "prefect", root)  # its environment: this process's, vacuum settings included
    os.environ["PREFECT_API_URL"] = server.url
    try:
        server.start_server()  # no worker: the script runs the flows itself, as the schedules would
        play(root, config_dir, fake, weeks)
    finally:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)  # the runs' last log lines, before their server goes
        server.stop()
        fake.stop()


def play(root: Path, config_dir: Path, fake, weeks: int) -> None:
    from flows.submit import submit_flow
    from flows.weekly import weekly_flow
    from numerflow.config import load_config
    from numerflow.numerai.blocks import NumeraiCredentials

    NumeraiCredentials(public_id="PUB-year", secret_key="SECRET-year", model_ids=fake.models).save(
        "year", overwrite=True
    )
    training = load_config(config_dir, {}).training
    began: list[datetime] = []  # the real instant each simulated day began
    counts = {"weekly": 0, "rounds": 0, "failed": 0, "submitted": 0}
    print(row(COLUMNS))
    for day in range(weeks * 7):
        began.append(datetime.now(UTC))
        today = FIRST_DAY + timedelta(days=day)
        weekday = today.isoweekday()  # 7: Sunday
        if weekday == 7:
            state = weekly_flow(config_dir=str(config_dir), return_state=True)
            counts["weekly"] += 1
            counts["failed"] += state.is_failed()
        elif 2 <= weekday <= 6:
            fake.round_number = FIRST_ROUND + counts["rounds"]
            state = submit_flow(config_dir=str(config_dir), return_state=True)
            counts["rounds"] += 1
            counts["failed"] += state.is_failed()
            counts["submitted"] += len(fake.submissions_for(fake.round_number)) == 1
        vacuum(began, day)
        if (today + timedelta(days=1)).month != today.month or day == weeks * 7 - 1:
            print(month_line(today, counts, training, root))
    print(f"{counts['weekly']} weekly runs, {counts['rounds']} rounds "
          f"({counts['submitted']} submitted once), {counts['failed']} failed runs")  # fmt: skip


def vacuum(began: list[datetime], day: int) -> None:
    """Prefect's vacuum as the server would run it at the end of `day`: events past the events'
    retention (7 days by default), then flow runs past db_vacuum's, with their orphans."""
    import asyncio
    from unittest import mock

    from prefect.server.database import provide_database_interface
    from prefect.server.services import db_vacuum
    from prefect.settings import get_current_settings

    settings = get_current_settings().server
    events_clock = _clock(began, day, settings.events.retention_period)
    runs_clock = _clock(began, day, settings.services.db_vacuum.retention_period)

    async def run() -> None:
        db = provide_database_interface()
        if events_clock is not None:
            with mock.patch.object(db_vacuum, "now", lambda tz="UTC": events_clock):
                await db_vacuum.vacuum_events_with_retention_overrides(db=db)
                await db_vacuum.vacuum_old_events(db=db)
        if runs_clock is not None:
            with mock.patch.object(db_vacuum, "now", lambda tz="UTC": runs_clock):
                await db_vacuum.vacuum_old_flow_runs(db=db)
                await db_vacuum.vacuum_old_flow_runs(db=db)  # subflows freed by their parents' removal
                await db_vacuum.vacuum_orphaned_logs(db=db)
                await db_vacuum.vacuum_orphaned_artifacts(db=db)
                await db_vacuum.vacuum_stale_artifact_collections(db=db)

    asyncio.run(run())


def _clock(began: list[datetime], day: int, retention: timedelta) -> datetime | None:
    """The real instant at which Prefect's `now() - retention` is the real instant the simulated
    day `retention` before the end of `day` began; None while no run is that old."""
    cutoff_day = day + 1 - retention.days
    return began[cutoff_day] + retention if cutoff_day > 0 else None


def month_line(today: date, counts: dict[str, int], training, root: Path) -> str:
    from prefect.client.orchestration import get_client

    from numerflow.ops.disk import disk_parts, prefect_database
    from numerflow.runs.retention import live_files, run_folders

    parts = disk_parts(training, prefect_database())
    with get_client(sync_client=True) as client:
        flow_runs = client.count_flow_runs()
    caches = (parts["bins"] or 0) + (parts["fold cache"] or 0)
    mib = [parts["runs"], parts["live files"], parts["data"], caches, parts["prefect db"] or 0]
    folders = len(run_folders(training.work_dir))
    lives = sum(f.suffix == ".parquet" for f in live_files(training.data.dir))
    return row([f"{today:%Y-%m}", counts["weekly"], counts["rounds"], *(f"{b / MIB:.2f}" for b in mib),
                flow_runs, folders, lives])  # fmt: skip


COLUMNS = ["month", "weekly", "rounds", "runs MiB", "live MiB", "data MiB", "caches MiB", "prefect db MiB",
           "flow runs", "run dirs", "live files"]  # fmt: skip


def row(cells: list) -> str:
    return f"{cells[0]:<8}" + "".join(
        f"{cell:>{len(title) + 2}}" for cell, title in zip(cells[1:], COLUMNS[1:], strict=True)
    )


if __name__ == "__main__":
    main()
