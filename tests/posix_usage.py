"""A static check for what Windows lacks: POSIX-only modules, signals and process groups.

A use is allowed only under a platform check (`if sys.platform ...`, `if os.name ...`,
`if platform.system() ...`, or a decorator that checks one, such as `pytest.mark.skipif`) or, for
an import, inside a `try` that catches ImportError.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.simulate_windows import POSIX_ONLY_MODULES

POSIX_ONLY_ATTRIBUTES = {
    "signal": {"SIGKILL", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGCHLD", "SIGSTOP",
               "SIGCONT", "SIGPIPE", "SIGTSTP", "pause", "setitimer", "alarm"},
    "os": {"killpg", "setsid", "setpgid", "getpgid", "setpgrp", "getpgrp", "fork", "forkpty", "getuid",
           "geteuid", "getgid", "getegid"},
}  # fmt: skip
POSIX_ONLY_KEYWORDS = {"start_new_session", "preexec_fn", "process_group"}  # subprocess.Popen
PLATFORM_NAMES = {"platform", "name", "system"}  # sys.platform, os.name, platform.system()


def posix_only_uses(source: str, filename: str = "<source>") -> list[str]:
    """`file:line: what` for every unguarded POSIX-only use in `source`."""
    tree = ast.parse(source, filename)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        what = _posix_only(node)
        if what and not _guarded(node, parents, is_import=isinstance(node, ast.Import | ast.ImportFrom)):
            found.append(f"{filename}:{node.lineno}: {what}")  # type: ignore[attr-defined]
    return found


def posix_only_uses_in(paths: list[Path], root: Path) -> list[str]:
    return [
        use
        for path in paths
        for use in posix_only_uses(path.read_text(encoding="utf-8"), str(path.relative_to(root)))
    ]


def _posix_only(node: ast.AST) -> str | None:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names if alias.name.partition(".")[0] in POSIX_ONLY_MODULES]
        return f"import {', '.join(names)}" if names else None
    if isinstance(node, ast.ImportFrom) and node.module:
        module = node.module.partition(".")[0]
        if module in POSIX_ONLY_MODULES:
            return f"from {node.module} import ..."
        names = [alias.name for alias in node.names if alias.name in POSIX_ONLY_ATTRIBUTES.get(module, ())]
        return f"from {module} import {', '.join(names)}" if names else None
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.attr in POSIX_ONLY_ATTRIBUTES.get(node.value.id, ())
    ):
        return f"{node.value.id}.{node.attr}"
    if isinstance(node, ast.keyword) and node.arg in POSIX_ONLY_KEYWORDS:
        return f"{node.arg}="
    return None


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST], is_import: bool) -> bool:
    while node in parents:
        parent = parents[node]
        if isinstance(parent, ast.If | ast.IfExp) and _checks_platform(parent.test):
            return True
        decorated = isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        if decorated and any(_checks_platform(decorator) for decorator in parent.decorator_list):
            return True  # e.g. @pytest.mark.skipif(sys.platform == "win32", ...)
        in_try = isinstance(parent, ast.Try) and node in parent.body
        if is_import and in_try and _catches_import_error(parent):
            return True
        node = parent
    return False


def _checks_platform(test: ast.AST) -> bool:
    return any(
        isinstance(node, ast.Attribute) and node.attr in PLATFORM_NAMES and isinstance(node.value, ast.Name)
        and node.value.id in ("sys", "os", "platform")
        for node in ast.walk(test)
    )  # fmt: skip


def _catches_import_error(statement: ast.Try) -> bool:
    caught = {
        name.id
        for handler in statement.handlers
        if handler.type is not None
        for name in ast.walk(handler.type)
        if isinstance(name, ast.Name)
    }
    return bool(caught & {"ImportError", "ModuleNotFoundError"})
