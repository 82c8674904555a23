"""The user's docs: the configuration page is the one the config models generate, every key is
described, the README's links resolve, nothing cites a file outside the repository, and the
MkDocs site builds in strict mode (a broken link, an anchor that is gone or a page missing from
the nav fails the build)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from numerflow.config.models import NumerflowConfig
from scripts.gen_config_docs import PAGE, _model_in, render, rows

ROOT = Path(__file__).resolve().parents[1]
# What the repository ships (generated run and data folders are never committed, so not read).
SHIPPED = ["README.md", "mkdocs.yml", "pyproject.toml", ".ci", "benchmarks", "cli", "config"]
SHIPPED += ["deployments", "docs", "flows", "numerflow", "scripts", "tasks", "tests"]


def test_the_configuration_page_is_the_generated_one() -> None:
    assert PAGE.read_text(encoding="utf-8") == render(), (
        "docs/configuration.md is out of date: run `uv run python -m scripts.gen_config_docs`"
    )


def test_every_config_key_has_a_description() -> None:
    missing = [
        f"{file_key}.yaml: {row.key}"
        for file_key, field in NumerflowConfig.model_fields.items()
        for row in rows(_model_in(field.annotation))
        if not row.field.description
        and not (_model_in(row.field.annotation) and _model_in(row.field.annotation).__doc__)
    ]
    assert not missing, f"add a Field(description=...) in numerflow/config/models.py for: {missing}"


def test_the_readme_links_to_files_that_exist() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = [t for t in re.findall(r"\]\(([^)#\s]+)", text) if not re.match(r"[a-z]+:", t)]
    assert targets and "docs/getting-started.md" in targets
    assert not [t for t in targets if not (ROOT / t).is_file()]


def _text_files() -> list[Path]:
    found = []
    for name in SHIPPED:
        path = ROOT / name
        found += [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return [path for path in found if "__pycache__" not in path.parts]


def test_nothing_cites_a_file_outside_the_repository() -> None:
    # The names are assembled so that this file does not match itself.
    outside = re.compile("|".join(["lightgbm" + "-notes", r"\.\./" + "shared", "shared/" + "reference"]))
    hits = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _text_files()
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if outside.search(line)
    ]
    assert not hits, hits


def test_the_docs_site_builds_strictly(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    done = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    nav = re.findall(r":\s*([\w-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(encoding="utf-8"), re.M)
    assert sorted(nav) == sorted(path.name for path in (ROOT / "docs").glob("*.md"))
    for page in nav:
        built = tmp_path / "site" / ("index.html" if page == "index.md" else f"{page[:-3]}/index.html")
        assert built.is_file(), page
    windows = (tmp_path / "site" / "windows" / "index.html").read_text(encoding="utf-8")
    assert "Coming from the old scripts" in windows  # the Windows guide is included whole
