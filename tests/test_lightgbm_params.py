"""Every LightGBM parameter under LightGBM's own names and aliases: resolved to its canonical
name, checked by LightGBM before any work, and trained with."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import psutil
import pytest
import yaml
from lightgbm.basic import _ConfigAliases

from numerflow.config import ConfigError, load_config
from numerflow.config.models import LightGBMParams
from numerflow.train.fit import fit_fold
from numerflow.train.folds import make_folds
from tests.conftest import prepare

FEATURES = [f"feature_{i:04d}" for i in range(12)]
FAST = {
    "params.num_iterations": 15,
    "params.learning_rate": 0.1,
    "params.feature_fraction": 0.5,
    "params.num_threads": 2,
}
# What participants tune, as they write it; min_child_samples is an alias of min_data_in_leaf.
TUNED = {"lambda_l2": 5.0, "extra_trees": True, "feature_fraction_bynode": 0.5, "min_child_samples": 60}


def _edit_params(config_dir: Path, name: str = "program_input_params", **params: object) -> Path:
    path = config_dir / f"{name}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["params"].update(params)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _canonical(name: str) -> str:
    """LightGBM's own canonical name of `name`, from its alias table."""
    return next(
        canonical for canonical, names in _ConfigAliases._get_all_param_aliases().items() if name in names
    )


def _lightgbm_message(params: dict[str, object]) -> str:
    """LightGBM's own message for `params`, first line, without its source location."""
    data = np.zeros((20, 2), dtype=np.float32)
    with pytest.raises(lgb.basic.LightGBMError) as caught:
        lgb.Booster({**params, "verbosity": -1}, lgb.Dataset(data, label=np.arange(20.0)))
    return str(caught.value).split(" at ")[0]


@pytest.mark.slow  # five small trainings: about 8 s
def test_tuned_parameters_reach_lightgbm_by_canonical_name_and_change_the_model(
    config_dir: Path, version_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict] = []
    real_train = lgb.train

    def spy(params: dict, *args: object, **kwargs: object) -> lgb.Booster:
        calls.append(dict(params))
        return real_train(params, *args, **kwargs)

    monkeypatch.setattr(lgb, "train", spy)

    def trees(overrides: dict[str, object]) -> str:
        params = load_config(config_dir, {**FAST, **overrides}).effective_params()
        prepared = prepare(version_dir, FEATURES, ["target"], params, tmp_path)
        fold = make_folds(prepared.eras, 3, 4)[1]
        result = fit_fold(prepared, fold, "target", params, seed=1, models_dir=tmp_path / "models")
        return result.model_path.read_text().split("parameters:")[0]

    base = trees({})
    for written, value in TUNED.items():
        canonical = _canonical(written)
        assert trees({f"params.{written}": value}) != base, written
        passed = calls[-1]
        assert passed[canonical] == value and (written == canonical or written not in passed)
    assert _canonical("min_child_samples") == "min_data_in_leaf"  # an alias indeed


def test_two_names_of_one_parameter_are_refused_naming_both(config_dir: Path) -> None:
    path = _edit_params(config_dir, reg_lambda=1.0, lambda_l2=2.0)
    with pytest.raises(ConfigError) as caught:
        load_config(config_dir)
    message = str(caught.value)
    assert f"{path}: params." in message
    assert re.search(
        r"(lambda_l2 and reg_lambda|reg_lambda and lambda_l2) are both names of LightGBM's lambda_l2", message
    )


def test_a_bad_value_is_refused_with_lightgbms_reason(config_dir: Path) -> None:
    reason = _lightgbm_message({"lambda_l2": -1})
    path = _edit_params(config_dir, lambda_l2=-1)
    with pytest.raises(ConfigError) as caught:
        load_config(config_dir)
    assert f"{path}: params.lambda_l2: -1 refused by LightGBM: {reason}" in str(caught.value)

    _edit_params(config_dir, lambda_l2=1.0)
    with pytest.raises(ConfigError) as caught:  # the same from --set, named as an override
        load_config(config_dir, {"params.extra_trees": "maybe"})
    reason = _lightgbm_message({"extra_trees": "maybe"})
    source = "override program_input_params.params.extra_trees"
    assert f"{source}: params.extra_trees: 'maybe' refused by LightGBM: {reason}" in str(caught.value)


def test_parameters_refused_only_together_name_the_slot(config_dir: Path) -> None:
    reason = _lightgbm_message({"linear_tree": True, "objective": "mae"})
    _edit_params(config_dir, linear_tree=True)  # fine alone, and so is mae alone
    training = config_dir / "training.yaml"
    data = yaml.safe_load(training.read_text(encoding="utf-8"))
    data["models"] = [{"name": "robust", "params": {"objective": "mae"}}]
    training.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(config_dir)
    together = "models: robust: its parameters together: linear_tree + objective: refused together"
    assert f"{together} by LightGBM: {reason}" in str(caught.value)


def test_an_unknown_name_suggests_the_closest(config_dir: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"params.lamda_l2: not a LightGBM .* parameter; did you mean lambda_l2"
    ):
        load_config(config_dir, {"params.lamda_l2": 1.0})


def test_an_override_replaces_the_parameter_under_any_of_its_names(config_dir: Path) -> None:
    path = config_dir / "program_input_params.yaml"  # an old file: colsample_bytree
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["params"]["colsample_bytree"] = data["params"].pop("feature_fraction")
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    params = load_config(config_dir, {"params.feature_fraction": 0.3}).effective_params()
    assert params.feature_fraction == 0.3 and "colsample_bytree" not in params.model_dump()
    with pytest.raises(ConfigError, match=r"params.feature_fraction and .*params.sub_feature are both"):
        load_config(config_dir, {"params.feature_fraction": 0.3, "params.sub_feature": 0.2})


def test_numerflows_own_keys_say_what_numerflow_does(config_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"params.seed: numerflow's own key: .*training.seed"):
        load_config(config_dir, {"params.random_state": 7})  # an alias of seed
    with pytest.raises(ConfigError, match=r"params.deterministic: numerflow's own key"):
        load_config(config_dir, {"params.deterministic": False})
    with pytest.raises(ConfigError, match=r"params.device_type: numerflow's own key: .*gpu.device"):
        load_config(config_dir, {"params.device": "gpu"})
    with pytest.raises(
        ConfigError, match=r"param_sets.big.gpu_device_id: numerflow's own key: .*gpu.device_index"
    ):
        load_config(config_dir, {"program_input_params.param_sets.big.gpu_device_id": 1})
    # The manual parameter file is used as written, its device included.
    manual = load_config(config_dir, {"training.params_source": "manual", "params.device_type": "gpu"})
    assert manual.effective_params().device_type == "gpu"

    with pytest.raises(
        ConfigError, match=r"params.objective: 'binary' is LightGBM's binary, not a regression"
    ):
        load_config(config_dir, {"params.objective": "binary"})
    # A slot may choose another regression objective on purpose; LightGBM's alias mae is one.
    slot = load_config(config_dir, {"params.objective": "mae"}).effective_params()
    assert slot.to_lightgbm(seed=1)["objective"] == "mae"


def test_num_threads_defaults_to_the_physical_cores() -> None:
    assert LightGBMParams().to_lightgbm(seed=1)["num_threads"] == psutil.cpu_count(logical=False)
    assert LightGBMParams(num_threads=1).to_lightgbm(seed=1)["num_threads"] == 1


def test_per_feature_parameters_are_checked_at_their_own_length() -> None:
    params = LightGBMParams(monotone_constraints=[1, 0, -1, 0, 0, 0, 0, 0])
    assert params.to_lightgbm(seed=1)["monotone_constraints"] == [1, 0, -1, 0, 0, 0, 0, 0]


def test_numerflows_fields_are_lightgbms_canonical_names() -> None:
    assert all(_canonical(field) == field for field in LightGBMParams.model_fields)


def test_canonical_parameter_files_load_without_importing_lightgbm(config_dir: Path) -> None:
    """LightGBM's import (a second or more) is paid only when a file uses other parameters."""
    manual = {"training.params_source": "manual", "params.num_iterations": 10}
    script = (
        "import sys; from numerflow.config import load_config; "
        f"load_config({str(config_dir)!r}); load_config({str(config_dir)!r}, {manual!r}); "
        "print('lightgbm' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert run.stdout == "False\n"
