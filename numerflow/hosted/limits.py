"""A child process held to Numerai's model-upload limits: 1 CPU, a memory cap, a time limit.

POSIX: the address-space limit (RLIMIT_AS) and the CPU affinity are set in the child before it
runs anything. Windows has neither `resource` nor `preexec_fn`: the child is pinned to one CPU
with psutil right after it starts (before its libraries start threads) and a psutil watchdog
kills it when its memory passes the cap. A Job Object would be the kernel's way, but needs
pywin32 or hand-written ctypes; psutil is already a numerflow dependency and measures the peak.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

try:
    import resource
except ImportError:  # Windows: the watchdog below holds the limits
    resource = None

GIB = 1024**3
WATCH_INTERVAL_S = 0.05


@dataclass(frozen=True)
class Limits:
    cpus: int = 1
    memory_bytes: int = 4 * GIB
    timeout_s: float = 600.0

    def describe(self) -> str:
        return f"{self.cpus} CPU, {self.memory_bytes / GIB:.3g} GiB, {self.timeout_s:g} s"


@dataclass(frozen=True)
class Finished:
    returncode: int | None  # None: killed at the time limit
    seconds: float
    stderr: str
    peak_memory_bytes: int | None  # measured by the watchdog (Windows)
    memory_killed: bool  # the watchdog killed it at the memory cap
    timed_out: bool


def posix_limits_available() -> bool:
    return resource is not None and os.name == "posix"


def _posix_preexec(limits: Limits) -> Callable[[], None]:
    assert resource is not None
    cpus = sorted(os.sched_getaffinity(0))[: limits.cpus] if hasattr(os, "sched_getaffinity") else []

    def apply() -> None:  # in the child, before exec
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        if cpus:
            os.sched_setaffinity(0, cpus)

    return apply


def run_limited(command: list[str], limits: Limits, cwd: Path, posix: bool | None = None) -> Finished:
    """Run `command` under `limits`; `posix=False` takes the Windows path (psutil) anywhere."""
    posix = posix_limits_available() if posix is None else posix
    env = {**os.environ, "OMP_NUM_THREADS": str(limits.cpus), "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)  # numerflow's own code must not be importable in there
    started = time.monotonic()
    extra: dict[str, Any] = {}
    if os.name == "posix" and posix:  # set in the child before it runs anything
        extra["preexec_fn"] = _posix_preexec(limits)
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **extra
    )
    watchdog = None if posix else _Watchdog(process.pid, limits)
    try:
        _, stderr = process.communicate(timeout=limits.timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        timed_out = True
    seconds = time.monotonic() - started
    if watchdog is not None:
        watchdog.stop()
    return Finished(
        returncode=None if timed_out else process.returncode,
        seconds=seconds,
        stderr=(stderr or "")[-4000:],
        peak_memory_bytes=watchdog.peak if watchdog else None,
        memory_killed=bool(watchdog and watchdog.killed),
        timed_out=timed_out,
    )


class _Watchdog:
    """Pins the child to the first CPUs, samples its memory and kills it over the cap."""

    def __init__(self, pid: int, limits: Limits) -> None:
        self.limits, self.peak, self.killed = limits, 0, False
        self._stop = threading.Event()
        try:
            self.process = psutil.Process(pid)
            if hasattr(self.process, "cpu_affinity"):  # not on macOS
                self.process.cpu_affinity(sorted(self.process.cpu_affinity())[: limits.cpus])
        except psutil.Error:
            return  # it already ended
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                info = self.process.memory_info()
            except psutil.Error:
                return
            used = max(info.rss, getattr(info, "peak_wset", 0))  # peak_wset: Windows' own peak
            self.peak = max(self.peak, used)
            if used > self.limits.memory_bytes:
                self.killed = True
                self.process.kill()
                return
            self._stop.wait(WATCH_INTERVAL_S)

    def stop(self) -> None:
        self._stop.set()
        if hasattr(self, "_thread"):
            self._thread.join(timeout=5)
