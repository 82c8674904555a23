"""A disk that fills up at chosen files: ENOSPC injected where numerflow's writes reach the OS.

While a name is full, a file whose name contains it (its temporary twin `.<name>.*.tmp` too)
behaves as on a full disk: `os.write` writes half of what it is given and then fails, `os.fsync`
cuts the file to half (the rest never reached the disk) and fails, and `os.replace` onto it
fails. `clear()` gives the space back. The file behind a descriptor is read from /proc (Linux).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest


def no_space(path: str) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


class FullDisk:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        if not Path("/proc/self/fd").is_dir():
            pytest.skip("needs /proc to name the file behind a descriptor")
        self.names: set[str] = set()
        self.failures: list[str] = []  # the files whose writes failed, in order
        self._short: set[int] = set()  # descriptors that already got their short write
        self._real = (os.write, os.fsync, os.replace)
        monkeypatch.setattr(os, "write", self._write)
        monkeypatch.setattr(os, "fsync", self._fsync)
        monkeypatch.setattr(os, "replace", self._replace)

    def at(self, *names: str) -> FullDisk:
        self.names.update(names)
        return self

    def clear(self) -> None:
        self.names.clear()
        self._short.clear()

    def _full(self, path: str) -> bool:
        return any(name in Path(path).name for name in self.names)

    def _fail(self, path: str) -> OSError:
        self.failures.append(path)
        return no_space(path)

    def _write(self, fd: int, data: bytes) -> int:
        path = _path_of(fd)
        if not self._full(path):
            return self._real[0](fd, data)
        if fd in self._short or len(data) < 2:
            raise self._fail(path)
        self._short.add(fd)
        return self._real[0](fd, bytes(data)[: len(data) // 2])  # a short write, as the disk fills

    def _fsync(self, fd: int) -> None:
        path = _path_of(fd)
        if not self._full(path):
            return self._real[1](fd)
        os.ftruncate(fd, os.fstat(fd).st_size // 2)
        raise self._fail(path)

    def _replace(self, source: str | Path, target: str | Path) -> None:
        if self._full(str(target)):
            raise self._fail(str(target))
        self._real[2](source, target)


def _path_of(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")
