"""Configuration: the YAML files under `config/` as validated, typed models."""

from numerflow.config.loader import ConfigError, default_config_dir, load_config, parse_overrides
from numerflow.config.models import LightGBMParams, NumerflowConfig

__all__ = [
    "ConfigError",
    "LightGBMParams",
    "NumerflowConfig",
    "default_config_dir",
    "load_config",
    "parse_overrides",
]
