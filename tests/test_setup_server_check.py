"""`numerflow setup`, `setup credentials` and `setup alerts` refuse Prefect's temporary server,
and `numerflow setup` prints the worker command in the shell of the platform."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from typer.testing import CliRunner

from cli.main import app
from numerflow.ops import server_check
from numerflow.ops.deploy import worker_command

runner = CliRunner()


@pytest.mark.parametrize(
    "command",
    [["setup"], ["setup", "credentials"], ["setup", "alerts", "--url", "http://127.0.0.1:9/hook"]],
    ids=lambda words: " ".join(words[:2]),
)
def test_set_up_commands_refuse_a_temporary_server(
    command: list[str], config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", "PUB")
    monkeypatch.setenv("NUMERAI_SECRET_KEY", "SECRET")
    args = [*command, *(["--config-dir", str(config_dir)] if command != ["setup", "credentials"] else [])]
    alerts = (config_dir / "alerts.yaml").read_text(encoding="utf-8")
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"numerflow {' '.join(command[:2])}: PREFECT_API_URL is not set" in result.output
    assert "export PREFECT_API_URL=http://127.0.0.1:4200/api" in result.output
    assert (config_dir / "alerts.yaml").read_text(encoding="utf-8") == alerts  # nothing recorded


def test_the_hint_is_powershell_on_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_check.os, "name", "nt")
    assert server_check.set_api_url_hint().startswith('$env:PREFECT_API_URL = "http://127.0.0.1:4200/api"')


def test_setup_prints_a_powershell_worker_command_on_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = tmp_path / "O'Brien" / "config"  # a quote PowerShell must not end the string at
    config_dir.mkdir(parents=True)
    command = worker_command("http://127.0.0.1:4200/api", config_dir, windows=True)
    assert command.startswith("$env:PREFECT_API_URL = 'http://127.0.0.1:4200/api'; & '")
    assert "numerflow' worker --config-dir '" in command
    assert command.endswith(f"'{str(config_dir).replace(chr(39), chr(39) * 2)}'")
    assert "O''Brien" in command
