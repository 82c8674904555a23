"""LightGBM model files, written and read by Python, never by LightGBM's C++ file API.

LightGBM hands a file name to its C++ library as UTF-8 bytes, which Windows opens in the ANSI
code page: a model under `C:\\Users\\Frédéric\\...` cannot be saved or loaded
(lightgbm-org/LightGBM#4721). Python opens any path, so the model travels as the text
`Booster.model_to_string` gives and `Booster(model_str=...)` takes: the same text format as
`save_model` writes, so files from before stay readable.
"""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb

from numerflow.io import atomic_path


def save_booster(path: Path, booster: lgb.Booster) -> Path:
    """Write `booster` to `path` atomically, as LightGBM's text model format."""
    with atomic_path(path) as tmp:
        tmp.write_text(booster.model_to_string(), encoding="utf-8")
    return path


def load_booster(path: Path) -> lgb.Booster:
    """The model at `path` (written by `save_booster` or LightGBM's own `save_model`)."""
    return lgb.Booster(model_str=Path(path).read_text(encoding="utf-8"))
