from pathlib import Path

import pytest
import yaml

from numerflow.config import ConfigError, load_config, parse_overrides


def _edit(config_dir: Path, name: str, **changes: object) -> Path:
    path = config_dir / f"{name}.yaml"
    data = yaml.safe_load(path.read_text()) or {}
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_config_is_numerais_tutorial_model(config_dir: Path) -> None:
    config = load_config(config_dir)
    params = config.effective_params()
    assert (params.num_iterations, params.learning_rate, params.max_depth) == (2000, 0.01, 5)
    assert (params.num_leaves, params.feature_fraction) == (31, 0.1)
    assert config.training.folds.embargo_eras >= 4  # 20-day targets need at least 4 eras


def test_relative_paths_resolve_against_project_root(config_dir: Path) -> None:
    config = load_config(config_dir)
    assert config.training.data.dir == config_dir.resolve().parent / "data"
    assert config.training.submission.path.is_absolute()


def test_missing_file_is_named(config_dir: Path) -> None:
    (config_dir / "features.yaml").unlink()
    with pytest.raises(ConfigError, match=r"features\.yaml: file not found"):
        load_config(config_dir)


def test_unknown_key_names_file_and_key(config_dir: Path) -> None:
    path = _edit(config_dir, "training", folds__n_fold=3)
    with pytest.raises(ConfigError) as info:
        load_config(config_dir)
    assert f"{path}: folds.n_fold: unknown key" in str(info.value)


def test_wrong_type_names_file_key_and_value(config_dir: Path) -> None:
    path = _edit(config_dir, "program_input_params", params__learning_rate="fast")
    with pytest.raises(ConfigError) as info:
        load_config(config_dir)
    message = str(info.value)
    assert f"{path}: params.learning_rate:" in message
    assert "valid number" in message and "'fast'" in message


def test_out_of_range_value(config_dir: Path) -> None:
    path = _edit(config_dir, "training", folds__n_folds=1)
    with pytest.raises(ConfigError, match=rf"{path}: folds.n_folds: .*greater than or equal to 2"):
        load_config(config_dir)


def test_every_error_is_reported_at_once(config_dir: Path) -> None:
    _edit(config_dir, "training", folds__n_folds=0, stacking="median")
    with pytest.raises(ConfigError) as info:
        load_config(config_dir)
    assert "folds.n_folds" in str(info.value) and "stacking" in str(info.value)


def test_not_a_mapping_and_bad_yaml(config_dir: Path) -> None:
    (config_dir / "features.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(config_dir)
    (config_dir / "features.yaml").write_text("feature_set: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(config_dir)


def test_feature_selection_needs_exactly_one_source(config_dir: Path) -> None:
    _edit(config_dir, "features", features=["feature_0001"])
    with pytest.raises(ConfigError, match="exactly one of 'feature_set' and 'features'"):
        load_config(config_dir)


def test_target_names_are_checked(config_dir: Path) -> None:
    _edit(config_dir, "training", targets=["target", "cyrusd"])
    with pytest.raises(ConfigError, match="not Numerai target names"):
        load_config(config_dir)


def test_overrides_apply_and_errors_name_the_override(config_dir: Path) -> None:
    overrides = parse_overrides(["training.folds.n_folds=3", "features.max_features=10"])
    config = load_config(config_dir, overrides)
    assert config.training.folds.n_folds == 3 and config.features.max_features == 10

    with pytest.raises(ConfigError, match=r"override training.folds.n_folds: .*greater than"):
        load_config(config_dir, parse_overrides(["training.folds.n_folds=1"]))
    with pytest.raises(ConfigError, match=r"override training.foldz: foldz: unknown key"):
        load_config(config_dir, {"training.foldz": 1})
    with pytest.raises(ConfigError, match="keys start with a config file name"):
        load_config(config_dir, {"trainig.folds.n_folds": 3})
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_overrides(["training.folds.n_folds"])


def test_manual_path_uses_model_params(config_dir: Path) -> None:
    _edit(config_dir, "model_params", params__num_iterations=123)
    assert load_config(config_dir).effective_params().num_iterations == 2000
    config = load_config(config_dir, {"training.params_source": "manual"})
    assert config.effective_params().num_iterations == 123


def test_scale_out_and_loader_settings_are_checked(config_dir: Path) -> None:
    config = load_config(config_dir, {"training.scale_out.dask_address": "tcp://10.0.0.5:8786"})
    assert config.training.scale_out.dask_address == "tcp://10.0.0.5:8786"
    assert config.training.bins_root() == config.training.work_dir / "bins"
    with pytest.raises(ConfigError, match=r"override training.scale_out.dask_address: .*pattern"):
        load_config(config_dir, {"training.scale_out.dask_address": "10.0.0.5:8786"})
    with pytest.raises(ConfigError, match=r"scale_out.task_resources: .*must be positive: \['GPU'\]"):
        load_config(config_dir, {"training.scale_out.task_resources": {"GPU": 0}})
    with pytest.raises(ConfigError, match=r"override training.data.loader: .*'auto', 'arrow' or 'stream'"):
        load_config(config_dir, {"training.data.loader": "pandas"})
