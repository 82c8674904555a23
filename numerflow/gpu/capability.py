"""Can the installed LightGBM train on the GPU at all? A tiny training in a subprocess (a
broken driver cannot take the flow down), cached per environment."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import lightgbm
from pydantic import BaseModel

from numerflow.gpu.probe import GpuDevice, GpuProbe
from numerflow.io import write_json_atomic

CAPABILITY_SCRIPT = """
import sys
import numpy as np
import lightgbm as lgb
X = np.random.default_rng(0).random((1000, 5))
params = {"objective": "regression", "device_type": sys.argv[1], "verbosity": -1, "num_leaves": 7}
if len(sys.argv) > 2:
    params["gpu_device_id"] = int(sys.argv[2])
lgb.train(params, lgb.Dataset(X, label=X[:, 0]), num_boost_round=2)
print("ok")
"""


class Capability(BaseModel):
    ok: bool
    reason: str
    cached: bool = False


def check_capability(
    learner: str, device: GpuDevice | None, probe: GpuProbe, cache_dir: Path | None = None
) -> Capability:
    """Can the installed LightGBM train with `device_type=learner`? A tiny training in a
    subprocess (a broken driver cannot take the flow down), cached per environment."""
    cache = (cache_dir or default_cache_dir()) / "gpu-capability.json"
    key = _environment_key(learner, device, probe)
    known = _read_cache(cache)
    if key in known:
        return Capability(ok=known[key]["ok"], reason=known[key]["reason"], cached=True)
    command = [sys.executable, "-c", CAPABILITY_SCRIPT, learner]
    if device is not None:
        command.append(str(device.index))
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=180)
        ok = done.returncode == 0 and done.stdout.strip().endswith("ok")
        reason = "a test training on the GPU succeeded" if ok else _last_error(done.stderr)
    except subprocess.TimeoutExpired:
        ok, reason = False, "a test training on the GPU did not finish within 180 s"
    known[key] = {"ok": ok, "reason": reason}
    write_json_atomic(cache, known)
    return Capability(ok=ok, reason=reason)


def default_cache_dir() -> Path:
    return Path(os.environ.get("NUMERFLOW_CACHE_DIR") or Path.home() / ".cache" / "numerflow")


LIGHTGBM_LIBRARY_NAMES = {"win32": "lib_lightgbm.dll", "darwin": "lib_lightgbm.dylib"}  # else .so


def lightgbm_library(platform: str = sys.platform) -> Path:
    """The installed LightGBM's shared library, named as LightGBM's own loader names it on `platform`."""
    name = LIGHTGBM_LIBRARY_NAMES.get(platform, "lib_lightgbm.so")
    return Path(lightgbm.__file__).parent / "lib" / name


def _environment_key(learner: str, device: GpuDevice | None, probe: GpuProbe) -> str:
    library = lightgbm_library()
    stamp = f"{library.stat().st_size}:{library.stat().st_mtime_ns}" if library.exists() else "?"
    parts = [sys.executable, lightgbm.__version__, stamp, learner, str(probe.driver_version),
             device.uuid if device else "-"]  # fmt: skip
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _read_cache(path: Path) -> dict[str, dict]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _last_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "the test training failed"
