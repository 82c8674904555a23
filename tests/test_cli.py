from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def test_synth_writes_a_dataset(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "synth",
            "--out",
            str(tmp_path),
            "--eras",
            "20",
            "--rows-per-era",
            "30",
            "--features",
            "12",
            "--seed",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    for name in ("train.parquet", "validation.parquet", "live.parquet", "features.json"):
        assert (tmp_path / "v5.2" / name).is_file()
    assert pd.read_parquet(tmp_path / "v5.2" / "train.parquet").shape[1] == 2 + 12 + 6


def test_synth_rejects_a_bad_size(tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", "--out", str(tmp_path), "--features", "2"])
    assert result.exit_code == 2 and "features" in result.output
    assert not (tmp_path / "v5.2").exists()


def test_run_refuses_bad_overrides_before_starting(config_dir: Path) -> None:
    result = runner.invoke(app, ["run", "--config-dir", str(config_dir), "--set", "training.folds.n_folds=1"])
    assert result.exit_code == 2
    assert "override training.folds.n_folds" in result.output
    result = runner.invoke(app, ["run", "--config-dir", str(config_dir), "--set", "nonsense"])
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.output


@pytest.mark.usefixtures("prefect_server")
def test_demo_runs_end_to_end(tmp_path: Path, config_dir: Path) -> None:
    work = tmp_path / "demo"
    result = runner.invoke(
        app,
        [
            "demo",
            "--work-dir",
            str(work),
            "--config-dir",
            str(config_dir),
            "--eras",
            "100",
            "--rows-per-era",
            "120",
            "--features",
            "24",
            "--set",
            "program_input_params.params.n_estimators=40",
            "--set",
            "program_input_params.params.learning_rate=0.1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "━" not in result.output and "fold models trained" not in result.output  # no terminal: no bars
    assert f"submission:     {work / 'submission.csv'} (dry-run" in result.output
    corr = float(result.output.split("validation CORR: mean ")[1].split(",")[0])
    assert corr > 0
    # the demo's data has no benchmark or meta-model files: MMC and BMC say so, never zeros
    assert "validation MMC: not computed: meta_model.parquet is not in" in result.output
    assert "validation BMC: not computed: validation_benchmark_models.parquet is not in" in result.output
    assert len(pd.read_csv(work / "submission.csv")) == 120


@pytest.mark.usefixtures("prefect_server")
def test_setup_credentials_saves_a_block_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from numerflow.numerai.blocks import NumeraiCredentials

    monkeypatch.setenv("NUMERAI_PUBLIC_ID", "PUB-cli")
    monkeypatch.setenv("NUMERAI_SECRET_KEY", "SECRET-cli-0f9e")
    monkeypatch.setenv("NUMERAI_MODEL_ID", "alpha=id-a,beta=id-b")
    result = runner.invoke(app, ["setup", "credentials", "--block-name", "cli-test", "--model", "gamma=id-c"])
    assert result.exit_code == 0, result.output
    assert "SECRET-cli-0f9e" not in result.output and "3 model ids" in result.output
    block = NumeraiCredentials.load("cli-test")
    assert block.secret_key.get_secret_value() == "SECRET-cli-0f9e"
    assert block.model_ids == {"gamma": "id-c", "alpha": "id-a", "beta": "id-b"}
    assert "SECRET-cli-0f9e" not in repr(block)

    bad = runner.invoke(app, ["setup", "credentials", "--block-name", "cli-test", "--model", "nameonly"])
    assert bad.exit_code == 2 and "expected NAME=ID" in bad.output
