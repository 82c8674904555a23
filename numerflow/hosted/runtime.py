"""Numerai's prediction runtime, rebuilt here: a virtual environment with the library versions of
Numerai's model-upload image for this Python, without numerflow in it.

The pins ship with numerflow (numerflow.numerai.images) so nothing is fetched to learn them. The
environment is built once with uv from the local interpreter (uv may not download one) and
cached under a folder named after the pins' hash: a change of pins builds a new one, never patches the old.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from filelock import FileLock

from numerflow.gpu.capability import default_cache_dir
from numerflow.io import atomic_path
from numerflow.numerai.images import Image

READY = "numerflow-runtime.json"  # written last: a folder without it is an unfinished build
BUILD_TIMEOUT_S = 900


class RuntimeBuildError(RuntimeError):
    """The pinned environment cannot be used or built."""


def runtime_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_runtime(image: Image, cache_dir: Path | None = None, interpreter: str | None = None) -> Path:
    """The Python executable of the cached environment for `image`, built first when missing."""
    root = (cache_dir or default_cache_dir()) / "numerai-runtime"
    venv = root / f"py{image.python}-{image.digest()}"
    if (venv / READY).is_file():
        return runtime_python(venv)
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(venv) + ".lock"):
        if not (venv / READY).is_file():
            _build(image, venv, interpreter or sys.executable)
    return runtime_python(venv)


def _build(image: Image, venv: Path, interpreter: str) -> None:
    uv = shutil.which("uv")
    if uv is None:
        raise RuntimeBuildError("uv is not on PATH: it builds Numerai's runtime (https://docs.astral.sh/uv/)")
    shutil.rmtree(venv, ignore_errors=True)  # an unfinished build
    base = _base_interpreter(interpreter)
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    steps = [
        [uv, "venv", "--quiet", "--python", base, str(venv)],
        [uv, "pip", "install", "--quiet", "--python", str(runtime_python(venv)), *image.requirements()],
    ]
    for command in steps:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=BUILD_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeBuildError(
                f"building Numerai's Python {image.python} runtime in {venv} failed "
                f"({' '.join(command[:3])}): {done.stderr.strip()[-800:]}"
            )
    with atomic_path(venv / READY) as tmp:
        tmp.write_text(json.dumps({"python": image.python, "packages": image.packages}), encoding="utf-8")


def _base_interpreter(interpreter: str) -> str:
    """The interpreter a virtual environment was made from, so the runtime never nests in ours."""
    done = subprocess.run(
        [interpreter, "-c", "import sys; print(sys._base_executable)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout.strip() or interpreter
