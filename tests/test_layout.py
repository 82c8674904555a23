"""The core (`numerflow/`) never imports the shell around it (`flows/`, `tasks/`, `cli/`), and its
stages import only the stages below them, so no cycle can form.

Checked statically on every module's import statements, including imports inside functions
and under TYPE_CHECKING, so a back-import cannot hide in a lazy import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from scripts.import_graph import STAGES, core_modules, stage_of, upward
from scripts.import_graph import main as import_graph_main

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


# The core's stages import only downward, in the order scripts/import_graph.py writes down once
# (STAGES) and docs/internals.md shows.


def upward_imports() -> dict[str, list[str]]:
    found = {}
    for path, module in core_modules():
        where = str(path.relative_to(CORE.parent).as_posix())
        hits = upward(path.read_text(encoding="utf-8"), module, path.name == "__init__.py")
        if hits:
            found[where] = hits
    return found


def test_the_core_imports_only_downward() -> None:
    offenders = upward_imports()
    order = " < ".join(stage.name for stage in STAGES)
    assert not offenders, f"numerflow/ imports a stage above its own (the order is {order}): {offenders}"


def test_every_core_package_has_a_stage() -> None:
    for _, module in core_modules():
        stage_of(module)  # raises, naming the package to place in STAGES


def test_the_check_sees_an_upward_import_anywhere() -> None:
    source = (
        "from numerflow.config import load_config\n"
        "if TYPE_CHECKING:\n    from numerflow.runs.plan import RunPlan\n"
        "def f():\n    import numerflow.ops.status\n    from numerflow import submit\n"
        "from ..hosted import slot\n"
    )
    assert upward(source, "numerflow.gpu.decision") == [
        "line 3: numerflow.runs.plan (gpu -> runs)",
        "line 5: numerflow.ops.status (gpu -> ops)",
        "line 6: numerflow.submit (gpu -> submit)",
        "line 7: numerflow.hosted (gpu -> hosted)",
    ]
    assert upward("from numerflow.data.files import DataError\nimport numpy", "numerflow.runs.plan") == []
    with pytest.raises(KeyError, match=r"numerflow\.newstage is in no stage"):
        upward("import numerflow.newstage.x", "numerflow.runs.plan")


def test_no_grab_bag_steps_module() -> None:
    found = {str(p.relative_to(CORE.parent).as_posix()) for p in CORE.rglob("steps.py")}
    assert not found, f"{sorted(found)}: name a module after its one job instead of steps.py"


def test_the_docs_show_the_current_import_graph() -> None:
    assert import_graph_main(["--check"]) == 0, "run `uv run python -m scripts.import_graph`"
