"""Folders LightGBM's own C++ code opens, kept to paths it can open on Windows.

LightGBM passes file names to C++ as UTF-8 bytes, and Windows opens those in the ANSI code page,
so a path with a character outside ASCII (`C:\\Users\\Frédéric\\...`) fails
(lightgbm-org/LightGBM#4721), unless Windows' "Use Unicode UTF-8 for worldwide language support"
makes the ANSI code page UTF-8. Models never go through LightGBM's file API
(numerflow.train.model_files); the binned Datasets (`save_binary`, `Dataset(path)`) and the
OpenCL learner's kernel cache (under `%APPDATA%`, lightgbm-org/LightGBM#6881) must, so they are
moved to an ASCII folder under `%ProgramData%` when their own would fail.
"""

from __future__ import annotations

import locale
import os
from pathlib import Path

FIX = "set training.data.bins_dir in config/training.yaml to a folder whose path has only ASCII characters"


class LightGBMPathError(ValueError):
    """No folder LightGBM can open was found for its files."""


def narrow_paths() -> bool:
    """Whether LightGBM's C++ file API fails on non-ASCII paths here: Windows, unless its ANSI
    code page is UTF-8 (65001)."""
    return os.name == "nt" and locale.getencoding().lower().replace("-", "") not in ("utf8", "cp65001")


def shared_ascii_root() -> Path:
    """numerflow's folder under %ProgramData% (C:\\ProgramData, writable by every user)."""
    return Path(os.environ.get("PROGRAMDATA") or r"C:\ProgramData") / "numerflow"


def lightgbm_folder(configured: Path, name: str) -> Path:
    """`configured`, or, when LightGBM could not open it here, `%ProgramData%\\numerflow\\<name>`;
    raises LightGBMPathError naming the fix when that is no better."""
    if not narrow_paths() or str(configured.absolute()).isascii():
        return configured
    fallback = shared_ascii_root() / name
    if not str(fallback).isascii():
        raise LightGBMPathError(
            f"{configured}: LightGBM cannot open a path with non-ASCII characters on Windows "
            f"(lightgbm-org/LightGBM#4721), nor {fallback}: {FIX}, e.g. C:\\numerflow-bins"
        )
    return fallback


def keep_opencl_cache_ascii() -> None:
    """Point this process's %APPDATA% (where the OpenCL learner caches compiled kernels, and
    which child processes inherit) at an ASCII folder when LightGBM could not open it."""
    appdata, fallback = os.environ.get("APPDATA", ""), shared_ascii_root() / "opencl-cache"
    if narrow_paths() and not appdata.isascii() and str(fallback).isascii():
        fallback.mkdir(parents=True, exist_ok=True)
        os.environ["APPDATA"] = str(fallback)
