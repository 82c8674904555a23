"""Plain functions behind run names, `numerflow setup`'s output and the alerts' block."""

from __future__ import annotations

import shlex
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from numerflow.config.models import ScheduleConfig
from numerflow.numerai.uploads import UploadOutcome
from numerflow.ops.alerts import failure_message
from numerflow.ops.deploy import worker_command
from numerflow.ops.notify_blocks import block_for_url, record_block
from numerflow.ops.schedule import describe_start, next_runs
from numerflow.ops.worker import worker_argv
from numerflow.runs.names import child_run_name, round_run_name, weekly_run_name
from numerflow.submit.file import SubmissionRecord
from numerflow.submit.outcome import SlotSubmission, SubmissionOutcome
from numerflow.submit.report import submission_table

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_weekly_names_differ_per_run_and_carry_the_version() -> None:
    day = date(2026, 11, 29)
    first = weekly_run_name(day, "v5.2", "1a2b3c4d-0000-4000-8000-000000000001")
    second = weekly_run_name(day, "v5.2", "9f8e7d6c-0000-4000-8000-000000000002")
    assert first == "weekly-2026-11-29-v5.2-1a2b3c4d"
    assert first != second and second.startswith("weekly-2026-11-29-v5.2-")


def test_round_and_child_names() -> None:
    assert round_run_name(1002, ["alpha", "beta"], uploading=True) == "round-1002-alpha-beta"
    assert round_run_name(None, [], uploading=False) == "round-local-no-models-dry-run"
    assert child_run_name("weekly-2026-11-29-v5.2-1a2b3c4d", "submission").startswith(
        "weekly-2026-11-29-v5.2-"
    )
    assert child_run_name(None, "submission") == "submission"


def test_next_runs_follow_cron_and_time_zone() -> None:
    thursday = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)
    weekly = next_runs(ScheduleConfig(cron="0 16 * * 0", timezone="America/New_York"), thursday, 2)
    assert weekly == [datetime(2026, 11, 29, 21, 0, tzinfo=UTC), datetime(2026, 12, 6, 21, 0, tzinfo=UTC)]
    rounds = next_runs(ScheduleConfig(cron="5 12 * * 2-6", timezone="UTC"), thursday, 1)
    assert rounds == [datetime(2026, 11, 27, 12, 5, tzinfo=UTC)]  # Thursday 12:05 has passed
    assert next_runs(ScheduleConfig(cron="0 16 * * 0", active=False), thursday, 3) == []
    assert describe_start(weekly[0], thursday) == "Sun 2026-11-29 21:00 UTC (in 3 d 8 h)"
    assert describe_start(rounds[0], datetime(2026, 11, 27, 11, 30, tzinfo=UTC)).endswith("(in 35 min)")


def test_printed_worker_command_runs_as_printed_from_any_folder(tmp_path: Path, config_dir: Path) -> None:
    command = worker_command("http://127.0.0.1:4321/api", config_dir)
    assert command.startswith("PREFECT_API_URL=http://127.0.0.1:4321/api ")
    assert shlex.split(command)[1] == str(Path(sys.executable).with_name("numerflow"))
    # The same line with --help instead of a worker, run by a shell from an unrelated folder
    # with no venv on PATH.
    probe = command.replace(f"worker --config-dir {config_dir}", "worker --help")
    done = subprocess.run(["/bin/sh", "-c", probe], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--config-dir" in done.stdout


def test_the_worker_starts_with_sigint_at_its_default_even_if_it_was_ignored() -> None:
    """Prefect's worker stops on SIGTERM by sending itself SIGINT: that must not be ignored."""
    child = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    parent = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "from numerflow.ops.worker import run_worker; "
        f"run_worker([sys.executable, '-c', {child!r}])"
    )
    done = subprocess.run(
        [sys.executable, "-c", parent], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "True", done.stderr


def test_worker_argv_takes_pool_and_limit() -> None:
    argv = worker_argv("numerflow-gpu", 2, "gpu-box")
    assert argv[1:] == ["worker", "start", "--pool", "numerflow-gpu", "--limit", "2", "--name", "gpu-box"]
    assert Path(argv[0]).name == "prefect" and Path(argv[0]).is_file()


@pytest.mark.parametrize(
    ("url", "block"),
    [
        ("https://hooks.slack.com/services/T0/B0/x", "slack-webhook/numerflow-alerts"),
        ("https://acme.webhook.office.com/webhookb2/x", "ms-teams-webhook/numerflow-alerts"),
        ("https://discord.com/api/webhooks/1/abc", "discord-webhook/numerflow-alerts"),
        ("http://127.0.0.1:9000/hook", "custom-webhook/numerflow-alerts"),
    ],
)
def test_block_type_follows_the_webhook_url(url: str, block: str) -> None:
    assert block_for_url(url) == block


def test_record_block_fills_in_the_shipped_alerts_file(tmp_path: Path) -> None:
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text((REPO_ROOT / "config" / "alerts.yaml").read_text())
    record_block(alerts, "slack-webhook/numerflow-alerts")
    text = alerts.read_text()
    assert "\nblock: slack-webhook/numerflow-alerts " in text and "# the Prefect UI" in text
    with pytest.raises(ValueError, match="set `block: slack-webhook/x` by hand"):
        record_block(alerts, "slack-webhook/x")


def test_alert_links_follow_the_server_the_process_talks_to() -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: "http://10.0.0.5:4300/api"}):
        _, body = failure_message("weekly-x", "numerflow-weekly", "Failed", "boom", "abc", None)
    assert body.endswith("http://10.0.0.5:4300/runs/flow-run/abc")
    _, body = failure_message("weekly-x", "numerflow-weekly", "Failed", "boom", "abc", "https://ui.example/")
    assert body.endswith("https://ui.example/runs/flow-run/abc")


def test_dry_run_submissions_table_has_no_blanks(tmp_path: Path) -> None:
    record = SubmissionRecord(path=tmp_path / "submission.csv", rows=10, sha256="ab" * 32)
    slot = SlotSubmission(slot="main", trained_run_id="run-1", submission=record)
    offline = SubmissionOutcome(status="dry-run", slots=[slot])
    rows, description = submission_table(offline)
    assert description == "dry run for no round (local live file)"
    assert rows[0]["slot"] == "main" and rows[0]["status"] == "dry-run" and rows[0]["trained_run"] == "run-1"
    assert all(value not in (None, "None", "") for row in rows for value in row.values())
    nothing = SubmissionOutcome(status="no-open-round", round=1001, message="no round is open")
    rows, description = submission_table(nothing)
    assert description == "no open round for round 1001" and rows[0]["detail"] == "no round is open"
    assert all(value not in (None, "None", "") for row in rows for value in row.values())
    alpha = SlotSubmission(slot="alpha", submit_as="alpha", trained_run_id="run-1", submission=record)
    broken = SlotSubmission(slot="beta", submit_as="beta", error="DataError: no live file")
    uploaded = SubmissionOutcome(
        status="upload-failed", round=1002, slots=[alpha, broken],
        uploads=[UploadOutcome(model="alpha", status="uploaded", submission_id="sub-1"),
                 UploadOutcome(model="beta", status="failed", detail="slot beta: DataError: no live file")],
    )  # fmt: skip
    rows, description = submission_table(uploaded)
    assert description == "uploads for round 1002"
    assert [(r["slot"], r["model"], r["status"]) for r in rows] == [
        ("alpha", "alpha", "uploaded"),
        ("beta", "beta", "failed"),
    ]
    assert rows[0]["submission_id"] == "sub-1" and rows[0]["round"] == "1002" and rows[1]["file"] == "-"
    assert all(value not in (None, "None", "") for row in rows for value in row.values())


def test_on_windows_the_worker_is_a_child_tied_to_numerflow_worker() -> None:
    """Simulated Windows: the child is handed to the Job Object step, and its status is ours."""
    from numerflow.ops.worker import run_worker

    tied = []
    with pytest.raises(SystemExit) as exited:
        run_worker([sys.executable, "-c", "raise SystemExit(3)"], windows=True, end_with_us=tied.append)
    assert exited.value.code == 3
    assert len(tied) == 1 and tied[0].returncode == 3  # the worker process itself, now ended
