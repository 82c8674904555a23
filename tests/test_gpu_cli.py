"""`numerflow gpu` previews and the GPU settings' checks in program_input_params.yaml."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from numerflow.config import load_config
from numerflow.config.loader import ConfigError

runner = CliRunner()


def test_preview_for_an_assumed_card_and_shape(config_dir: Path) -> None:
    args = [
        "gpu",
        "--config-dir",
        str(config_dir),
        "--assume-free-vram",
        "3GiB",
        "--assume-shape",
        "2.7e6x2376",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2,700,000 rows x 2,376 features at era_stride 4" in result.output
    assert "decision:   gpu" in result.output and "era_stride 4 -> 5" in result.output
    assert "VRAM:       about" in result.output and "fallbacks:  cpu" in result.output

    report = json.loads(runner.invoke(app, [*args, "--json"]).output)
    decision = report["decision"]
    assert decision["device_type"] == "gpu" and decision["era_stride"] == 5
    assert decision["estimate_bytes"] <= 0.9 * decision["free_bytes"]


def test_preview_of_a_small_shape_and_bad_arguments(config_dir: Path) -> None:
    small = runner.invoke(
        app,
        ["gpu", "--config-dir", str(config_dir), "--assume-free-vram", "8GiB", "--assume-shape", "25000x60"],
    )
    assert small.exit_code == 0 and "decision:   cpu" in small.output and "break-even" in small.output
    bad = runner.invoke(app, ["gpu", "--config-dir", str(config_dir), "--assume-shape", "big"])
    assert bad.exit_code != 0 and "--assume-shape" in bad.output


def test_without_data_the_report_says_how_to_preview(config_dir: Path) -> None:
    result = runner.invoke(app, ["gpu", "--config-dir", str(config_dir), "--assume-free-vram", "8GiB"])
    assert result.exit_code == 0, result.output
    assert "pass --assume-shape ROWSxFEATURES" in result.output
    assert "data shape not known, VRAM not checked" in result.output


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"program_input_params.tiers": {"full": {}}}, "tiers: retired"),
        ({"program_input_params.gpu.learner": "cuda"}, "use gpu.device"),
        ({"program_input_params.gpu.device": "opencl"}, "gpu.device"),
        ({"program_input_params.gpu.params": {"device_type": "cpu"}}, "the GPU decision chooses it"),
        ({"program_input_params.gpu.params": {"max_binz": 63}}, "not a LightGBM .* parameter; did you mean"),
    ],
)
def test_gpu_settings_are_checked(config_dir: Path, override: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(config_dir, override)
