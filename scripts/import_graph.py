"""The core's stages, lowest first, and the import graph between them, read from every import
statement of `numerflow/` (including imports inside functions and under TYPE_CHECKING).

`uv run python -m scripts.import_graph` prints the graph and writes it into docs/internals.md
(between its import-graph markers); `--check` exits 1 when the page's copy differs.
tests/test_layout.py holds the core to this order: a stage imports only itself and stages below.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "numerflow"
PAGE = ROOT / "docs" / "internals.md"
START, END = "<!-- import-graph:start -->", "<!-- import-graph:end -->"


class Stage(NamedTuple):
    name: str
    parts: tuple[str, ...]  # the modules or packages directly under numerflow/ it holds
    holds: str  # what it is, for people


# Lowest first: each stage may import only itself and the stages above it in this list.
STAGES = (
    Stage("base", ("io", "progress", "cachedirs", "lgbpaths"),
          "atomic writes, progress callbacks, cache folders, LightGBM paths (no numerflow import)"),
    Stage("config", ("config",), "the YAML files' typed models, the loader and overrides, flow parameters"),
    Stage("data", ("data",),
          "Numerai's files and reference file names, rows, bins, memory guard, synthetic data"),
    Stage("train", ("train",), "folds, the fallback ladder, fit, final model, predict"),
    Stage("score", ("score",), "metrics, stacking, evaluation, MMC/BMC/FNC, charts"),
    Stage("gpu", ("gpu",), "NVML probe, LightGBM GPU check, VRAM model, the device decision from a shape"),
    Stage("numerai", ("numerai",), "client, training-data sync, downloads, ledger, uploads, images"),
    Stage("runs", ("runs",), "the plan, its device decision, run folders, fit planning, manifests, history"),
    Stage("submit", ("submit",), "live prediction, the submission file, prediction uploads, outcomes"),
    Stage("hosted", ("hosted",), "model_upload slots: the pickle, its check in Numerai's runtime"),
    Stage("live", ("live",), "live scores of submitted rounds: fetch, store, compare, charts"),
    Stage("report", ("report",), "one renderer of figures for the CLI, the summary, the history, the charts"),
    Stage("ops", ("ops",), "Prefect set-up, alerts, heartbeats, status, the worker"),
)  # fmt: skip
RANK = {part: rank for rank, stage in enumerate(STAGES) for part in stage.parts}


def stage_of(module: str) -> str | None:
    """The stage of a dotted numerflow module name; None outside numerflow or for `numerflow` itself."""
    parts = module.split(".")
    if parts[0] != "numerflow" or len(parts) < 2:
        return None
    rank = RANK.get(parts[1])
    if rank is None:
        raise KeyError(f"numerflow.{parts[1]} is in no stage: add it to STAGES in scripts/import_graph.py")
    return STAGES[rank].name


def module_name(path: Path) -> str:
    relative = path.relative_to(CORE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, imported module) for every import of `source`, the module named `module`; relative
    imports resolved, `from numerflow.x import y` counted as both numerflow.x and numerflow.x.y
    (y may be a module)."""
    found: list[tuple[int, str]] = []
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join([*base, *([node.module] if node.module else [])])
            found.append((node.lineno, name))
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names if name == "numerflow"]
    return sorted(found, key=lambda hit: hit[0])  # ast.walk goes breadth first: back to line order


def upward(source: str, module: str, is_package: bool = False) -> list[str]:
    """Imports of `module` that reach a stage above its own: 'line N: numerflow.x (stage a -> b)'."""
    own = stage_of(module)
    if own is None:
        return []
    names = [stage.name for stage in STAGES]
    hits = []
    for line, name in imports(source, module, is_package):
        target = stage_of(name)
        if target is not None and names.index(target) > names.index(own):
            hits.append(f"line {line}: {name} ({own} -> {target})")
    return hits


def core_modules() -> list[tuple[Path, str]]:
    return [(path, module_name(path)) for path in sorted(CORE.rglob("*.py"))]


def graph() -> dict[str, set[str]]:
    """Each stage and the other stages its modules import."""
    edges: dict[str, set[str]] = {stage.name: set() for stage in STAGES}
    for path, module in core_modules():
        own = stage_of(module)
        if own is None:
            continue
        for _, name in imports(path.read_text(encoding="utf-8"), module, path.name == "__init__.py"):
            target = stage_of(name)
            if target is not None and target != own:
                edges[own].add(target)
    return edges


def render() -> str:
    """The order and the graph as one text block, top stage first, as people read a stack."""
    edges = graph()
    names = [stage.name for stage in STAGES]
    width = max(map(len, names))
    lines = ["```"]
    for stage in reversed(STAGES):
        uses = ", ".join(sorted(edges[stage.name], key=names.index, reverse=True)) or "-"
        lines.append(f"{stage.name:<{width}}  imports {uses}")
    lines.append("```")
    return "\n".join(lines)


def with_graph(page: str) -> str:
    head, start, rest = page.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise ValueError(f"{PAGE}: add the markers {START} and {END} where the graph goes")
    return f"{head}{START}\n{render()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if docs/internals.md's copy is out of date"
    )
    args = parser.parse_args(argv)
    page = PAGE.read_text(encoding="utf-8")
    if args.check:
        if with_graph(page) != page:
            print(f"{PAGE}: the import graph is out of date: run `uv run python -m scripts.import_graph`",
                  file=sys.stderr)  # fmt: skip
            return 1
        return 0
    print(render())
    PAGE.write_text(with_graph(page), encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
