"""LightGBM as on Windows, where its C++ file API cannot open a non-ASCII path
(lightgbm-org/LightGBM#4721): numerflow keeps every LightGBM file operation off such paths."""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from lightgbm.basic import _LIB, LightGBMError
from typer.testing import CliRunner

import numerflow.lgbpaths as lgbpaths
from cli.main import app
from numerflow.lgbpaths import LightGBMPathError, keep_opencl_cache_ascii, lightgbm_folder

# Every entry point of LightGBM's C API that takes a file name.
FILE_APIS = (
    "LGBM_DatasetCreateFromFile",
    "LGBM_DatasetSaveBinary",
    "LGBM_DatasetDumpText",
    "LGBM_BoosterCreateFromModelfile",
    "LGBM_BoosterSaveModel",
    "LGBM_BoosterPredictForFile",
)


def _narrow(name: str, call: Callable[..., int]) -> Callable[..., int]:
    def narrow_call(*args: object) -> int:
        for arg in args:
            if isinstance(arg, ctypes.c_char_p) and arg.value and not arg.value.isascii():
                raise LightGBMError(f"{name}: could not open {arg.value!r} (simulated ANSI code page)")
        return call(*args)

    return narrow_call


@pytest.fixture
def narrow_lightgbm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """LightGBM's file APIs fail on non-ASCII paths; %ProgramData% is an ASCII folder (returned)."""
    for name in FILE_APIS:
        monkeypatch.setattr(_LIB, name, _narrow(name, getattr(_LIB, name)))
    monkeypatch.setattr(lgbpaths, "narrow_paths", lambda: True)
    program_data = tmp_path / "ProgramData"
    monkeypatch.setenv("PROGRAMDATA", str(program_data))
    yield program_data


def test_the_simulation_fails_as_windows_does(narrow_lightgbm: Path, tmp_path: Path) -> None:
    dataset = lgb.Dataset(np.arange(60.0).reshape(-1, 1), label=np.arange(60.0)).construct()
    with pytest.raises(LightGBMError, match="simulated ANSI code page"):
        dataset.save_binary(str(tmp_path / "Frédéric.bin"))
    dataset.save_binary(str(tmp_path / "plain.bin"))  # ASCII paths still work


def test_lightgbm_folders_move_to_program_data_only_when_needed(
    narrow_lightgbm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain, accented = tmp_path / "runs" / "bins", tmp_path / "Frédéric" / "bins"
    assert lightgbm_folder(plain, "bins") == plain
    assert lightgbm_folder(accented, "bins") == narrow_lightgbm / "numerflow" / "bins"
    monkeypatch.setattr(lgbpaths, "narrow_paths", lambda: False)  # Linux, or a UTF-8 code page
    assert lightgbm_folder(accented, "bins") == accented


def test_no_ascii_folder_is_a_clear_refusal(narrow_lightgbm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROGRAMDATA", str(narrow_lightgbm.parent / "Données"))
    with pytest.raises(LightGBMPathError, match=r"set training\.data\.bins_dir .* only ASCII"):
        lightgbm_folder(Path("C:/Users/Frédéric/numerflow/runs/bins"), "bins")


def test_the_opencl_kernel_cache_moves_off_a_non_ascii_appdata(
    narrow_lightgbm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPDATA", "C:/Users/Frédéric/AppData/Roaming")
    keep_opencl_cache_ascii()
    assert Path(lgbpaths.os.environ["APPDATA"]) == narrow_lightgbm / "numerflow" / "opencl-cache"
    monkeypatch.setenv("APPDATA", "C:/Users/fred/AppData/Roaming")
    keep_opencl_cache_ascii()
    assert lgbpaths.os.environ["APPDATA"] == "C:/Users/fred/AppData/Roaming"


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_the_demo_runs_in_a_folder_with_an_accented_name(
    narrow_lightgbm: Path, tmp_path: Path, config_dir: Path
) -> None:
    work = tmp_path / "Frédéric" / "numerflow-demo"
    result = CliRunner().invoke(
        app,
        [
            "demo", "--work-dir", str(work), "--config-dir", str(config_dir),
            "--eras", "60", "--rows-per-era", "60", "--features", "12",
            "--set", "training.folds.n_folds=2",
            "--set", "program_input_params.params.n_estimators=10",
            "--set", "program_input_params.params.learning_rate=0.1",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(work / "submission.csv")) == 60
    assert list((narrow_lightgbm / "numerflow" / "bins").glob("*/train.bin"))  # the bins moved
    assert list((work / "runs").rglob("fold_0.txt"))  # the models stayed, written by Python
