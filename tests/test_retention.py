"""training.retention: which run folders, live files and data versions go, and `numerflow prune`."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from numerflow.config import ConfigError, load_config
from numerflow.numerai import ledger
from numerflow.runs.manifest import mark_latest
from numerflow.runs.retention import UNRESOLVED_ROUNDS, apply_prune, plan_prune

KB = 1024


def _run(work_dir: Path, day: int, slots: list[str], version: str = "v5.2") -> Path:
    """A run folder of 2026-01-<day> that finished `slots` (none: it never finished)."""
    run = work_dir / f"202601{day:02d}T160000Z-{day:06x}"
    run.mkdir(parents=True)
    (run / "plan.json").write_text(f'{{"data": {{"version": "{version}"}}}}')
    (run / "oof.parquet").write_bytes(b"x" * KB)
    for slot in slots:
        (run / "slots" / slot).mkdir(parents=True)
        (run / "slots" / slot / "manifest.json").write_text("{}")
    return run


def _training(tmp_path: Path, **retention: object):
    overrides = {"training.work_dir": str(tmp_path / "runs"), "training.data.dir": str(tmp_path / "data"),
                 "training.data.version": "latest"}  # fmt: skip
    overrides |= {f"training.retention.{key}": value for key, value in retention.items()}
    return load_config(None, overrides).training


def _removed(plan) -> set[str]:
    return {r.path.name for r in plan.removals}


def test_runs_kept_per_slot_pointed_to_named_by_the_ledger_or_still_running(tmp_path: Path) -> None:
    work = tmp_path / "runs"
    a_runs = [_run(work, day, ["a"]) for day in range(1, 16)]  # 15 runs of slot a
    b_old = _run(work, 16, ["b"])  # slot b's only run: its newest
    crashed = _run(work, 17, [])  # never finished, older than a finished run
    a_late = _run(work, 18, ["a"])
    running = _run(work, 19, [])  # newer than every finished run: may still be training
    mark_latest(work, a_runs[0], "a")  # a pointer to an old run (a slot rolled back by hand)
    fields = {"model": "m", "sha256": "s", "rows": 1, "submission_id": "x"}
    newest = 1200
    ledger.append(work, round=newest, trained_run_id=a_runs[1].name, **fields)  # not yet resolved
    ledger.append(work, round=newest - UNRESOLVED_ROUNDS, trained_run_id=a_runs[2].name, **fields)  # resolved

    plan = plan_prune(_training(tmp_path, weekly_runs=12))

    newest_a = [r.name for r in [*a_runs, a_late]][-12:]
    expected = {r.name for r in [*a_runs, crashed]} - set(newest_a) - {a_runs[0].name, a_runs[1].name}
    assert _removed(plan) == expected
    assert a_runs[2].name in expected and crashed.name in expected
    assert {b_old.name, running.name}.isdisjoint(_removed(plan))
    assert plan.bytes == sum(r.bytes for r in plan.removals) >= len(expected) * KB
    assert [r.reason for r in plan.removals if r.path == crashed] == ["run folder never finished"]

    assert apply_prune(plan) == plan.removals
    assert sorted(p.name for p in work.iterdir() if p.is_dir() and p.name[0] == "2") == sorted(
        {r.name for r in [*a_runs, b_old, crashed, a_late, running]} - expected
    )
    assert plan_prune(_training(tmp_path, weekly_runs=12)).removals == []  # nothing more is due


def test_no_finished_run_means_nothing_is_removed(tmp_path: Path) -> None:
    _run(tmp_path / "runs", 1, [])
    assert plan_prune(_training(tmp_path)).removals == []


def test_newest_live_files_by_round_number_and_data_versions_only_when_asked(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for version in ("v4.3", "v5.0", "v5.1", "v5.10"):
        (data / version).mkdir(parents=True)
        (data / version / "train.parquet").write_bytes(b"t" * KB)
    rounds = [998, 999, 1000, 1001, 1002]
    for number in rounds:
        (data / "v5.10" / f"live_{number}.parquet").write_bytes(b"l")
        (data / "v5.10" / f"live_{number}.parquet.source.json").write_text("{}")  # the download's ETag
    (data / "v5.10" / "live_997.parquet.source.json").write_text("{}")  # its live file already gone
    (data / "v5.10" / "live.parquet").write_bytes(b"l")
    _run(tmp_path / "runs", 1, ["a"], version="v5.0")  # the version each kept run trained on stays

    plan = plan_prune(_training(tmp_path, live_files=3))
    gone = {f"live_{n}.parquet{suffix}" for n in rounds[:2] for suffix in ("", ".source.json")}
    assert _removed(plan) == gone | {"live_997.parquet.source.json"}  # 1000 > 999 as numbers

    with_versions = plan_prune(_training(tmp_path, live_files=3, data_versions=True))
    assert _removed(with_versions) - _removed(plan) == {"v4.3", "v5.1"}  # v5.10 is the newest


def test_weekly_runs_must_cover_the_run_history(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"retention.weekly_runs \(10\) must exceed scoring.history_runs"):
        load_config(None, {"training.retention.weekly_runs": 10})


def test_prune_dry_run_lists_and_keeps_then_prune_removes(tmp_path: Path, config_dir: Path) -> None:
    training_file = config_dir / "training.yaml"
    settings = yaml.safe_load(training_file.read_text())
    settings["work_dir"], settings["data"]["dir"] = str(tmp_path / "runs"), str(tmp_path / "data")
    settings["retention"]["weekly_runs"], settings["scoring"]["history_runs"] = 2, 1
    training_file.write_text(yaml.safe_dump(settings))
    runs = [_run(tmp_path / "runs", day, ["main"]) for day in (1, 2, 3)]

    runner = CliRunner()
    dry = runner.invoke(app, ["prune", "--dry-run", "--config-dir", str(config_dir)])
    assert dry.exit_code == 0, dry.output
    assert f"would remove {runs[0]}" in dry.output and "would remove 1 item(s)" in dry.output
    assert all(run.exists() for run in runs)

    done = runner.invoke(app, ["prune", "--config-dir", str(config_dir)])
    assert done.exit_code == 0 and f"removed {runs[0]}" in done.output
    assert [run.exists() for run in runs] == [False, True, True]


def test_shipped_server_settings_vacuum_flow_runs_after_the_kept_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The systemd unit, the Windows supervisor and the server command of the README and of
    docs/operations.md set the same db_vacuum settings, and Prefect reads them as flow-run vacuum
    after more than the kept weeks."""
    from prefect.settings.models.server.services import ServerServicesDBVacuumSettings

    root = Path(__file__).resolve().parents[1]
    pattern = r"(PREFECT_SERVER_SERVICES_DB_VACUUM_\w+)\s*=\s*\"?([\w,]+)"
    files = ["deployments/systemd/numerflow-server.service", "deployments/windows/numerflow-services.ps1"]
    files += ["README.md", "docs/operations.md"]
    shipped = [dict(re.findall(pattern, (root / name).read_text())) for name in files]
    assert shipped[0] and all(found == shipped[0] for found in shipped)
    for name, value in shipped[0].items():
        monkeypatch.setenv(name, value)
    settings = ServerServicesDBVacuumSettings()
    assert "flow_runs" in settings.enabled_vacuum_types and "events" in settings.enabled_vacuum_types
    kept_weeks = load_config(None, {}).training.retention.weekly_runs
    assert settings.retention_period > timedelta(weeks=kept_weeks)


def test_shipped_server_settings_keep_run_leases_across_a_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same four places set the lease storage to Prefect's on-disk store (a restarted server
    otherwise forgets running runs' leases and they end Crashed), a value Prefect reads and loads."""
    import importlib

    from prefect.settings.models.server.concurrency import ServerConcurrencySettings

    root = Path(__file__).resolve().parents[1]
    pattern = r"PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE\s*=\s*\"?([\w.]+)"
    files = ["deployments/systemd/numerflow-server.service", "deployments/windows/numerflow-services.ps1"]
    files += ["README.md", "docs/operations.md"]
    shipped = {name: re.findall(pattern, (root / name).read_text()) for name in files}
    values = {value for found in shipped.values() for value in found}
    assert all(shipped.values()) and len(values) == 1, shipped
    [value] = values
    monkeypatch.setenv("PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE", value)
    assert ServerConcurrencySettings().lease_storage == value
    assert value != ServerConcurrencySettings.model_fields["lease_storage"].default  # not the in-memory one
    assert hasattr(importlib.import_module(value), "ConcurrencyLeaseStorage")
