"""Can the installed LightGBM train on this GPU at all, and on which device did it? A tiny
training in a child process, cached per environment.

Everything that touches a GPU driver runs in a child (listing OpenCL platforms, the training):
a broken driver or a LightGBM built against another NCCL dies by a signal there (seen as
`free(): invalid pointer` at import), and the run goes on to the CPU with the reason."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import lightgbm
from pydantic import BaseModel, ValidationError

from numerflow.gpu.numbering import (
    DeviceNumberingError,
    OpenClChoice,
    OpenClPlatform,
    choose_opencl_device,
    cuda_ordinal,
)
from numerflow.gpu.probe import GpuDevice, GpuProbe
from numerflow.gpu.vram import Learner
from numerflow.io import write_json_atomic

CHILD_TIMEOUT_S = 180
# verbosity 1 makes LightGBM log the device it opened ("Using GPU Device: <name>, Vendor: <v>")
# and whether it honoured the requested one ("Using requested OpenCL platform <p> device <d>";
# it silently takes the default device when the numbers are out of range).
CAPABILITY_SCRIPT = """
import sys
import numpy as np
import lightgbm as lgb
X = np.random.default_rng(0).random((1000, 5))
params = {"objective": "regression", "device_type": sys.argv[1], "verbosity": 1, "num_leaves": 7}
if sys.argv[2] != "-":
    params["gpu_platform_id"] = int(sys.argv[2])
if sys.argv[3] != "-":
    params["gpu_device_id"] = int(sys.argv[3])
lgb.train(params, lgb.Dataset(X, label=X[:, 0]), num_boost_round=2)
print("ok")
"""
USED_DEVICE = re.compile(r"Using GPU Device: (?P<device>.*?), Vendor: (?P<vendor>.*)")
REQUESTED = "Using requested OpenCL platform {platform} device {device}"


class Capability(BaseModel):
    ok: bool
    reason: str
    cached: bool = False
    learner: Learner | None = None
    platform_id: int | None = None  # gpu_platform_id (OpenCL)
    device_id: int | None = None  # gpu_device_id: OpenCL's within the platform, or CUDA's number
    platform: str | None = None
    trained_on: str | None = None  # the device LightGBM said it used


class ChildOutcome(BaseModel):
    ok: bool
    stdout: str
    failure: str  # what went wrong, when not ok


def run_child(command: list[str], what: str, timeout_s: float = CHILD_TIMEOUT_S) -> ChildOutcome:
    """Run `command`; a non-zero exit, a signal or a timeout becomes a sentence, never an exception."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, errors="replace")
    except subprocess.TimeoutExpired:
        return ChildOutcome(ok=False, stdout="", failure=f"{what} did not finish within {timeout_s:g} s")
    if done.returncode < 0:
        name = _signal_name(-done.returncode)
        detail = _last_line(done.stderr)
        return ChildOutcome(
            ok=False,
            stdout=done.stdout,
            failure=f"{what} crashed with {name} (the driver or the LightGBM build, not a Python error)"
            + (f": {detail}" if detail else ""),
        )
    if done.returncode != 0:
        return ChildOutcome(
            ok=False, stdout=done.stdout, failure=f"{what} failed: {_last_line(done.stderr) or 'no message'}"
        )
    return ChildOutcome(ok=True, stdout=done.stdout, failure="")


def check_capability(
    learner: Learner,
    device: GpuDevice,
    probe: GpuProbe,
    cache_dir: Path | None = None,
    opencl_platform: str | None = None,
) -> Capability:
    """Can the installed LightGBM train with `device_type=learner` on `device`? For the OpenCL
    learner the platform and device are chosen first (NVIDIA's, or `opencl_platform`)."""
    cache = (cache_dir or default_cache_dir()) / "gpu-capability.json"
    ordinal = cuda_ordinal(probe, device)
    key = _environment_key(learner, device, ordinal, probe, opencl_platform)
    known = _read_cache(cache)
    if key in known:
        try:
            return Capability.model_validate({**known[key], "cached": True})
        except ValidationError:
            pass  # written by an older numerflow: check again
    capability = _check(learner, device, ordinal, opencl_platform)
    known[key] = capability.model_dump(mode="json")
    write_json_atomic(cache, known)
    return capability


def _check(learner: Learner, device: GpuDevice, ordinal: int, opencl_platform: str | None) -> Capability:
    def cannot(what: str) -> Capability:
        return Capability(ok=False, reason=f"cannot use the GPU: {what}", learner=learner)

    choice: OpenClChoice | None = None
    if learner == "gpu":
        listed = run_child([sys.executable, "-m", "numerflow.gpu.opencl"], "listing the OpenCL platforms")
        if not listed.ok:
            return cannot(listed.failure)
        try:
            platforms = [OpenClPlatform.model_validate(p) for p in json.loads(listed.stdout)]
            choice = choose_opencl_device(platforms, device, ordinal, opencl_platform)
        except (ValueError, DeviceNumberingError) as exc:
            return cannot(str(exc))
    platform_id = choice.platform_id if choice else None
    device_id = choice.device_id if choice else ordinal
    arguments = [learner, _arg(platform_id), _arg(device_id)]
    trained = run_child([sys.executable, "-c", CAPABILITY_SCRIPT, *arguments], "a test training on the GPU")
    if not trained.ok:
        return cannot(trained.failure)
    if choice and REQUESTED.format(platform=platform_id, device=device_id) not in trained.stdout:
        return cannot(f"LightGBM ignored OpenCL platform {platform_id} device {device_id} ({choice.device})")
    used = USED_DEVICE.search(trained.stdout)
    trained_on = f"{used['device']} ({used['vendor'].strip()})" if used else None
    where = f"OpenCL platform {platform_id} ({choice.platform}) device {device_id}" if choice else (
        f"CUDA device {device_id}"
    )  # fmt: skip
    return Capability(
        ok=True,
        reason=f"a test training succeeded on {where}" + (f": {trained_on}" if trained_on else ""),
        learner=learner,
        platform_id=platform_id,
        device_id=device_id,
        platform=choice.platform if choice else None,
        trained_on=trained_on,
    )


def default_cache_dir() -> Path:
    return Path(os.environ.get("NUMERFLOW_CACHE_DIR") or Path.home() / ".cache" / "numerflow")


def _arg(number: int | None) -> str:
    return "-" if number is None else str(number)


LIGHTGBM_LIBRARY_NAMES = {"win32": "lib_lightgbm.dll", "darwin": "lib_lightgbm.dylib"}  # else .so


def lightgbm_library(platform: str = sys.platform) -> Path:
    """The installed LightGBM's shared library, named as LightGBM's own loader names it on `platform`."""
    name = LIGHTGBM_LIBRARY_NAMES.get(platform, "lib_lightgbm.so")
    return Path(lightgbm.__file__).parent / "lib" / name


def _environment_key(
    learner: str, device: GpuDevice, ordinal: int, probe: GpuProbe, opencl_platform: str | None
) -> str:
    library = lightgbm_library()
    stamp = f"{library.stat().st_size}:{library.stat().st_mtime_ns}" if library.exists() else "?"
    parts = [sys.executable, lightgbm.__version__, stamp, learner, str(probe.driver_version), device.uuid,
             str(ordinal), opencl_platform or "-"]  # fmt: skip
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _read_cache(path: Path) -> dict[str, dict]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _signal_name(number: int) -> str:
    try:
        return f"{signal.Signals(number).name} (signal {number})"
    except ValueError:
        return f"signal {number}"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""
