"""Portability to Windows, checked where it can be on Linux: a static check for POSIX-only uses,
and both sides of every place the project branches on the platform."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import psutil
import pytest

import numerflow.io
import tests.processes
from numerflow.data import memory
from numerflow.gpu.capability import lightgbm_library
from numerflow.io import REPLACE_RETRY_DELAYS_S, replace_with_retry, write_text_atomic
from tests.posix_usage import posix_only_uses, posix_only_uses_in

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("numerflow", "flows", "tasks", "cli", "tests", "benchmarks")


def test_no_posix_only_module_signal_or_process_group_outside_a_platform_check() -> None:
    files = [path for folder in CHECKED for path in sorted((ROOT / folder).rglob("*.py"))]
    assert len(files) > 50
    assert posix_only_uses_in(files, ROOT) == []


@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ("import fcntl\n", ["import fcntl"]),
        ("import os, resource\n", ["import resource"]),
        ("from pwd import getpwnam\n", ["from pwd import ..."]),
        ("def lock():\n    import fcntl\n", ["import fcntl"]),
        ("os.kill(pid, signal.SIGKILL)\n", ["signal.SIGKILL"]),
        ("from signal import SIGHUP\n", ["from signal import SIGHUP"]),
        ("os.killpg(os.getpgid(pid), 15)\n", ["os.killpg", "os.getpgid"]),
        ("subprocess.Popen(args, start_new_session=True)\n", ["start_new_session="]),
        ("if sys.platform != 'win32':\n    import fcntl\n", []),
        ("if os.name == 'posix':\n    os.killpg(1, 15)\n", []),
        ("try:\n    import termios\nexcept ImportError:\n    termios = None\n", []),
        ("try:\n    import termios\nexcept KeyError:\n    pass\n", ["import termios"]),
        ("import signal\nsignal.SIGTERM, signal.SIGINT\n", []),
        ("@pytest.mark.skipif(sys.platform == 'win32', reason='')\ndef test():\n    signal.SIGKILL\n", []),
        ("@pytest.mark.slow\ndef test():\n    signal.SIGKILL\n", ["signal.SIGKILL"]),
    ],
)
def test_the_static_check_flags_unguarded_posix_only_uses(source: str, flagged: list[str]) -> None:
    assert [use.split(": ", 1)[1] for use in posix_only_uses(source)] == flagged


def _sharing_violation() -> PermissionError:
    error = PermissionError(errno.EACCES, "The process cannot access the file")
    error.winerror = 32  # type: ignore[attr-defined]  # what Windows sets; POSIX errors have none
    return error


def test_a_replace_blocked_by_a_scanner_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, target = tmp_path / "new", tmp_path / "target"
    source.write_text("new")
    failures = [_sharing_violation(), _sharing_violation()]
    real_replace = os.replace

    def replace(src: Path, dst: Path) -> None:
        if failures:
            raise failures.pop()
        real_replace(src, dst)

    monkeypatch.setattr(numerflow.io.os, "replace", replace)
    monkeypatch.setattr(numerflow.io.time, "sleep", lambda seconds: None)
    replace_with_retry(source, target)
    assert target.read_text() == "new" and not source.exists() and not failures


def test_a_replace_fails_at_once_on_posix_and_after_the_retries_on_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls, slept = [], []
    posix_error = PermissionError(errno.EACCES, "Permission denied")
    errors = iter([posix_error] + [_sharing_violation()] * (len(REPLACE_RETRY_DELAYS_S) + 1))

    def replace(src: Path, dst: Path) -> None:
        calls.append(src)
        raise next(errors)

    monkeypatch.setattr(numerflow.io.os, "replace", replace)
    monkeypatch.setattr(numerflow.io.time, "sleep", slept.append)
    with pytest.raises(PermissionError) as raised:
        replace_with_retry(tmp_path / "a", tmp_path / "b")
    assert raised.value is posix_error and len(calls) == 1 and not slept
    with pytest.raises(PermissionError, match="cannot access"):
        replace_with_retry(tmp_path / "a", tmp_path / "b")
    assert len(calls) == 2 + len(REPLACE_RETRY_DELAYS_S) and slept == list(REPLACE_RETRY_DELAYS_S)


def test_atomic_writes_flush_through_a_writable_handle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows' fsync fails on a read-only handle; on POSIX a zero-byte write shows the same."""
    synced, real_fsync = [], os.fsync

    def windows_fsync(fd: int) -> None:
        os.write(fd, b"")  # EBADF on a read-only descriptor
        real_fsync(fd)
        synced.append(fd)

    monkeypatch.setattr(numerflow.io.os, "fsync", windows_fsync)
    write_text_atomic(tmp_path / "manifest.json", "{}")
    assert synced and (tmp_path / "manifest.json").read_text() == "{}"


def test_lightgbm_library_is_named_as_on_each_platform() -> None:
    assert lightgbm_library("win32").name == "lib_lightgbm.dll"
    assert lightgbm_library("darwin").name == "lib_lightgbm.dylib"
    assert lightgbm_library("linux").name == "lib_lightgbm.so"
    assert lightgbm_library().is_file()  # the one installed here is found by its real name


def test_free_memory_comes_from_psutil_capped_by_the_cgroup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_cgroup_headroom", lambda: None)  # Windows, macOS, no container
    free, source = memory.available_memory()
    assert abs(free - psutil.virtual_memory().available) < 0.1 * free and "psutil" in source
    monkeypatch.setattr(memory, "_cgroup_headroom", lambda: 2**20)
    assert memory.available_memory() == (2**20, "cgroup memory limit")


@pytest.mark.parametrize(("platform", "trims"), [("linux", True), ("win32", False), ("darwin", False)])
def test_freed_memory_is_handed_back_where_the_c_library_can(
    monkeypatch: pytest.MonkeyPatch, platform: str, trims: bool
) -> None:
    calls = []

    class Libc:
        def malloc_trim(self, pad: int) -> int:
            calls.append(pad)
            return 1

    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: Libc())
    monkeypatch.setattr(memory.sys, "platform", platform)
    memory.release_freed_memory()
    assert calls == ([0] if trims else [])


class RecordingProcess:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def send_signal(self, number: int) -> None:
        self.calls.append(f"signal {number}")

    def terminate(self) -> None:
        self.calls.append("terminate")


@pytest.mark.parametrize(("windows", "expected"), [(False, ["signal 2"]), (True, ["terminate"])])
def test_test_servers_are_asked_to_stop_as_each_platform_allows(
    windows: bool, expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    process = RecordingProcess()
    monkeypatch.setattr(tests.processes, "WINDOWS", windows)
    tests.processes.ask_to_stop(process, 2)  # type: ignore[arg-type]
    assert process.calls == expected
