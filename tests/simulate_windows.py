"""The next best thing to running on Windows: the POSIX-only modules made unimportable.

`python -m tests.simulate_windows imports` imports every module of numerflow, flows, tasks and
cli; `python -m tests.simulate_windows pytest ARGS` runs pytest on ARGS, leaving out the tests
that need a Prefect server (the Dask tests included). Both start a fresh interpreter so that no module
was imported before the block. `sys.platform` stays what it is (faking it for a whole process
breaks asyncio); the places where numerflow branches on the platform are tested both ways.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path

POSIX_ONLY_MODULES = ("fcntl", "resource", "pwd", "grp", "termios")
# Libraries that load a per-platform backend: on Windows they load their Windows one, which cannot
# run here, so their Linux one is loaded before the block. Every other library copes unaided.
PLATFORM_BACKENDS = ("psutil", "locket")  # locket: Dask's file lock
PACKAGES = ("numerflow", "flows", "tasks", "cli")
SERVER_FIXTURES = {"prefect_server", "real_prefect", "on_real_prefect"}  # the Dask tests use one too


# Left out of the re-run: their work happens in plain child interpreters (not under the block).
NOT_SIMULATED = ("tests/test_device_decision.py::test_capability_check_runs_once_per_environment",)
NOT_SIMULATED_FILES = ("tests/test_windows_simulated.py", "tests/test_windows_supervisor.py")


def rerun_command(basetemp: Path) -> list[str]:
    """The server-free tests again, in a fresh interpreter under the block."""
    return [
        sys.executable, "-m", "tests.simulate_windows", "pytest", "-q", "-p", "no:cacheprovider",
        "--basetemp", str(basetemp), "tests",
        *(f"--ignore={path}" for path in NOT_SIMULATED_FILES),
        *(f"--deselect={test}" for test in NOT_SIMULATED),
    ]  # fmt: skip


class PosixOnlyBlocker(importlib.abc.MetaPathFinder):
    """Answers an import of a POSIX-only module as Windows does: ModuleNotFoundError."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] in POSIX_ONLY_MODULES:
            raise ModuleNotFoundError(f"No module named {fullname!r} (simulated Windows)", name=fullname)
        return None


def block_posix_only_modules() -> None:
    for name in PLATFORM_BACKENDS:
        importlib.import_module(name)
    for name in POSIX_ONLY_MODULES:
        sys.modules.pop(name, None)
    sys.meta_path.insert(0, PosixOnlyBlocker())


def import_everything() -> list[str]:
    """Import every module of the project's packages; returns their names."""
    imported = []
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        imported.append(package_name)
        for module in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            importlib.import_module(module.name)
            imported.append(module.name)
    return imported


class LeaveOutServerTests:
    """pytest plugin: deselect the tests that need a Prefect server: the session's (its fixtures)
    or their own (marked integration, e.g. the server killed mid-run)."""

    def pytest_collection_modifyitems(self, config: object, items: list) -> None:
        kept = [
            item
            for item in items
            if not SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))
            and item.get_closest_marker("integration") is None
        ]
        left_out = [item for item in items if item not in kept]
        if left_out:
            config.hook.pytest_deselected(items=left_out)  # type: ignore[attr-defined]
            items[:] = kept


def main(argv: list[str]) -> int:
    block_posix_only_modules()
    if argv[:1] == ["imports"]:
        print(f"imported {len(import_everything())} modules with {', '.join(POSIX_ONLY_MODULES)} blocked")
        return 0
    if argv[:1] == ["pytest"]:
        import pytest

        return int(pytest.main(argv[1:], plugins=[LeaveOutServerTests()]))
    print("usage: python -m tests.simulate_windows imports | pytest [ARGS]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
