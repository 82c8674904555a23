"""Windows cannot run here; the next best thing: numerflow with the POSIX-only modules
unimportable (tests/simulate_windows.py), in fresh interpreters."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # fresh interpreters; one reruns the server-free tests
IMPORT_FCNTL_BLOCKED = "import tests.simulate_windows as w; w.block_posix_only_modules(); import fcntl"


def _simulate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.simulate_windows", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_the_simulation_refuses_posix_only_modules() -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_FCNTL_BLOCKED],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0 and "No module named 'fcntl' (simulated Windows)" in done.stderr


def test_every_module_imports_without_posix_only_modules() -> None:
    done = _simulate("imports")
    assert done.returncode == 0, done.stderr[-4000:]
    assert int(re.search(r"imported (\d+) modules", done.stdout).group(1)) > 50


def test_the_server_free_tests_pass_without_posix_only_modules(
    windows_rerun: tuple[subprocess.Popen[bytes], Path] | None,
) -> None:
    assert windows_rerun is not None  # started with the session (tests/conftest.py)
    rerun, output_file = windows_rerun
    rerun.wait(timeout=900)
    output = output_file.read_text(errors="replace")
    assert rerun.returncode == 0, output[-6000:]
    assert int(re.search(r"(\d+) passed", output).group(1)) > 80  # not an empty selection
