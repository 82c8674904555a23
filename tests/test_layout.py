"""The core (`numerflow/`) never imports the shell around it (`flows/`, `tasks/`, `cli/`).

Checked statically on every module's import statements, including imports inside functions
and under TYPE_CHECKING, so a back-import cannot hide in a lazy import."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "numerflow"
SHELL = ("flows", "tasks", "cli")


def shell_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [f"line {node.lineno}: {name}" for name in names if name.split(".")[0] in SHELL]
    return found


def test_core_never_imports_the_shell() -> None:
    offenders = {
        str(path.relative_to(CORE.parent)): hits
        for path in sorted(CORE.rglob("*.py"))
        if (hits := shell_imports(path.read_text(encoding="utf-8")))
    }
    assert not offenders, f"numerflow/ must not import flows/, tasks/ or cli/: {offenders}"


def test_the_check_sees_lazy_and_type_checking_imports() -> None:
    source = "if TYPE_CHECKING:\n    from flows.submission import X\ndef f():\n    import tasks.gpu\n"
    assert shell_imports(source) == ["line 2: flows.submission", "line 4: tasks.gpu"]
    assert shell_imports("from numerflow.train.fit import fit_fold\nimport numpy") == []
