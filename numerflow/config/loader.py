"""Load `config/*.yaml` into `NumerflowConfig`, with overrides, failing before any work.

Errors name the file, the key and the reason, e.g.
`config/training.yaml: folds.n_folds: Input should be greater than or equal to 2 (got 1)`.

`params.KEY=VALUE` overrides a LightGBM parameter of the active parameter source
(`program_input_params.yaml`, or `model_params.yaml` with `params_source: manual`), so the
same override reaches LightGBM whichever file the run trains with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from numerflow.config.lightgbm_names import ParamError
from numerflow.config.models import NumerflowConfig, parameter_name

CONFIG_FILES = (
    "training",
    "features",
    "program_input_params",
    "model_params",
    "program_output_params",
    "deployments",
    "alerts",
)


ACTIVE_PARAMS = "params"  # override prefix for the active parameter file's `params:`
PARAMETER_FILES = ("program_input_params", "model_params")


class ConfigError(ValueError):
    """A config file or override is missing, malformed or out of range."""


def default_config_dir() -> Path:
    """`./config` when run from a checkout, else the one shipped beside the package."""
    here = Path.cwd() / "config"
    if (here / "training.yaml").is_file():
        return here
    return Path(__file__).resolve().parents[2] / "config"


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """Turn `file.key.sub=value` strings into a mapping; values are parsed as YAML."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {pair!r}: expected KEY=VALUE, e.g. training.folds.n_folds=3")
        try:
            overrides[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {pair!r}: value is not valid YAML ({exc})") from exc
    return overrides


def load_config(
    config_dir: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> NumerflowConfig:
    """Read and validate every config file; relative paths resolve against the project root
    (the folder that holds `config/`)."""
    directory = Path(config_dir) if config_dir is not None else default_config_dir()
    if not directory.is_dir():
        raise ConfigError(f"{directory}: config directory not found")
    raw = {name: _read_yaml(directory / f"{name}.yaml") for name in CONFIG_FILES}
    overrides = _to_active_source(raw, overrides or {})
    _one_name_per_parameter(overrides)
    for key, value in overrides.items():
        _apply_override(raw, key, value)
    try:
        config = NumerflowConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, directory, overrides)) from None
    return _resolve_paths(config, directory.resolve().parent)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: file not found (numerflow needs {', '.join(_names())})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top, got {type(data).__name__}")
    return data


def _names() -> list[str]:
    return [f"{name}.yaml" for name in CONFIG_FILES]


def _to_active_source(raw: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`params.KEY` -> `program_input_params.params.KEY` or `model_params.params.KEY`, by the
    `params_source` in force (an override of it included)."""
    source = overrides.get("training.params_source", raw["training"].get("params_source", "program"))
    parameter_file = "model_params" if source == "manual" else "program_input_params"
    return {
        f"{parameter_file}.{key}" if key.startswith(f"{ACTIVE_PARAMS}.") else key: value
        for key, value in overrides.items()
    }


def _apply_override(raw: dict[str, Any], key: str, value: Any) -> None:
    file_name, _, dotted = key.partition(".")
    if file_name not in raw or not dotted:
        raise ConfigError(
            f"override {key!r}: keys start with a config file name "
            f"({', '.join(CONFIG_FILES)}) followed by the key, e.g. training.folds.n_folds, "
            f"or with {ACTIVE_PARAMS}. for the active parameter file, e.g. params.learning_rate"
        )
    node = raw[file_name]
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a section")
        node = child
    if _is_lightgbm_mapping(file_name, parts[:-1]):
        _drop_other_names(node, parts[-1])
    node[parts[-1]] = value


def _one_name_per_parameter(overrides: Mapping[str, Any]) -> None:
    """Two overrides of one LightGBM parameter under two of its names are refused, naming both."""
    seen: dict[tuple[str, ...], str] = {}
    for key in overrides:
        file_name, _, dotted = key.partition(".")
        *path, leaf = dotted.split(".")
        name = parameter_name(leaf) if _is_lightgbm_mapping(file_name, path) else None
        if name is None:
            continue
        where = (file_name, *path, name)
        if where in seen:
            raise ConfigError(f"overrides {seen[where]} and {key} are both LightGBM's {name}; keep one")
        seen[where] = key


def _is_lightgbm_mapping(file_name: str, path: list[str]) -> bool:
    """Whether `path` in `file_name` is a mapping of LightGBM parameters."""
    if file_name not in PARAMETER_FILES:
        return False
    return path == ["params"] or path == ["gpu", "params"] or (len(path) == 2 and path[0] == "param_sets")


def _drop_other_names(params: dict[str, Any], key: str) -> None:
    """An override replaces the parameter whichever of LightGBM's names the file wrote it under
    (`params.feature_fraction=0.2` replaces `colsample_bytree: 0.1`)."""
    name = parameter_name(key)
    for written in [k for k in params if k != key and name is not None and parameter_name(k) == name]:
        del params[written]


def _describe(exc: ValidationError, directory: Path, overrides: Mapping[str, Any]) -> str:
    lines = []
    for error in exc.errors():
        if not error["loc"]:  # a check across files; its message starts with the file it names
            lines.append(f"{directory}/{error['msg'].removeprefix('Value error, ')}")
            continue
        file_name, *path = (str(p) for p in error["loc"])
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, ParamError):  # a LightGBM parameter: name it and LightGBM's reason
            path.append(cause.key)
        key = ".".join(path) or "(top level)"
        reason = error["msg"]
        if isinstance(cause, ParamError):
            reason = str(cause).removeprefix(f"{cause.key}: ")
        elif error["type"] == "extra_forbidden":
            reason = "unknown key"
        elif "input" in error and not isinstance(error["input"], dict | list):
            reason = f"{reason} (got {error['input']!r})"
        source = f"{directory / file_name}.yaml"
        if f"{file_name}.{key}" in overrides:
            source = f"override {file_name}.{key}"
        lines.append(f"{source}: {key}: {reason}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _resolve_paths(config: NumerflowConfig, root: Path) -> NumerflowConfig:
    training = config.training
    training.data.dir = _absolute(training.data.dir, root)
    training.work_dir = _absolute(training.work_dir, root)
    if training.data.bins_dir is not None:
        training.data.bins_dir = _absolute(training.data.bins_dir, root)
    training.submission.path = _absolute(training.submission.path, root)
    return config


def _absolute(path: Path, root: Path) -> Path:
    return path if path.is_absolute() else root / path
