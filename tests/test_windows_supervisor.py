"""The PowerShell 7 supervisor and the Windows guide, read as text (there is no PowerShell here):
every `prefect`/`numerflow` command they run or print exists with the options they give it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "deployments" / "windows" / "numerflow-services.ps1"
GUIDES = [ROOT / name for name in ("deployments/windows/README.md", "deployments/README.md", "README.md")]
BIN = Path(sys.executable).parent
# A PowerShell array element: a double-quoted string (backtick escapes), a single-quoted one, a variable.
TOKEN = re.compile(r'"((?:[^"`]|`.)*)"|\'([^\']*)\'|(\$[\w:]+)|(,)|(\))')


def script_commands() -> dict[str, list[str]]:
    """`$NameCommand = @("run", ...)` arrays of the script, by name, as uv's arguments."""
    text = SCRIPT.read_text(encoding="utf-8")
    commands = {}
    for match in re.finditer(r"\$(\w+Command)\s*=\s*@\(", text):
        tokens, position = [], match.end()
        while (token := TOKEN.search(text, position)) and token.group(5) is None:
            double, single, variable = token.group(1), token.group(2), token.group(3)
            if token.group(4) is None:
                tokens.append(double if double is not None else single if single is not None else variable)
            position = token.end()
        commands[match.group(1)] = tokens
    return commands


def guide_commands() -> list[list[str]]:
    """`uv run prefect|numerflow ...` lines in the guides' code blocks, split into words."""
    found = []
    for guide in GUIDES:
        for block in re.findall(r"```(?:powershell|bash)\n(.*?)```", guide.read_text(encoding="utf-8"), re.S):
            for line in block.splitlines():
                line = line.split("#", 1)[0].strip()
                for command in re.split(r";\s*", line):
                    words = command.split()
                    if words[:3] in (["uv", "run", "prefect"], ["uv", "run", "numerflow"]):
                        found.append(words[1:])
    return found


@cache
def _options(program: str, *subcommands: str) -> frozenset[str]:
    """The options `program subcommands --help` lists; fails if the command does not exist."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    done = subprocess.run(
        [BIN / program, *subcommands, "--help"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, (
        f"`{program} {' '.join(subcommands)}` does not exist:\n{done.stdout}{done.stderr}"
    )
    return frozenset(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", done.stdout))


def _check(command: list[str]) -> None:
    """`command` is `run PROGRAM SUB... --OPTION VALUE...` as given to uv."""
    assert command[0] == "run", command
    program, rest = command[1], command[2:]
    words = rest[: next((i for i, word in enumerate(rest) if word.startswith("-")), len(rest))]
    given = {word.split("=", 1)[0] for word in rest if word.startswith("--")}
    unknown = given - _options(program, *words)
    assert not unknown, f"`{program} {' '.join(words)}` has no option {sorted(unknown)}"


def test_the_script_runs_the_prefect_server_and_worker_through_uv() -> None:
    commands = script_commands()
    assert commands["ServerCommand"][:4] == ["run", "prefect", "server", "start"]
    assert commands["WorkerCommand"][:4] == ["run", "prefect", "worker", "start"]
    text = SCRIPT.read_text(encoding="utf-8")
    for name in commands:  # each one is used, not just declared
        assert len(re.findall(rf"\${name}\b", text)) >= 2, name


@pytest.mark.slow  # `--help` of real commands, each a fresh interpreter
@pytest.mark.parametrize("name", ["ServerCommand", "WorkerCommand"])
def test_each_prefect_command_of_the_script_exists_with_its_options(name: str) -> None:
    _check(script_commands()[name])


def test_the_script_generates_a_valid_encryption_key() -> None:
    command = script_commands()["NewKeyCommand"]
    assert command[:3] == ["run", "python", "-c"]
    done = subprocess.run([sys.executable, "-c", command[3]], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    Fernet(done.stdout.strip().encode())  # raises on anything but a Fernet key


@pytest.mark.slow
def test_every_command_the_guides_print_exists_with_its_options() -> None:
    commands = guide_commands()
    assert any(command[:4] == ["run", "prefect", "worker", "start"] for command in commands)
    assert any(command[:4] == ["run", "numerflow", "setup", "credentials"] for command in commands)
    for command in commands:
        _check(command)


def test_the_guides_worker_command_is_the_one_the_script_runs() -> None:
    """Same pool and limit as config/deployments.yaml, in the guides and the script's defaults."""
    shipped = yaml.safe_load((ROOT / "config" / "deployments.yaml").read_text(encoding="utf-8"))
    expected = {"--pool": shipped["work_pool"], "--limit": str(shipped["concurrency"])}
    printed = [c for c in guide_commands() if c[:4] == ["run", "prefect", "worker", "start"]]
    assert printed
    for command in printed:
        assert {option: command[command.index(option) + 1] for option in expected} == expected
    script = script_commands()["WorkerCommand"]
    assert script[script.index("--pool") + 1] == "$Pool" and script[script.index("--limit") + 1] == "$Limit"
    text = SCRIPT.read_text(encoding="utf-8")
    defaults = dict(re.findall(r"\[(?:string|int)\]\$(Pool|Limit)\s*=\s*\"?([\w-]+)", text))
    assert defaults == {"Pool": expected["--pool"], "Limit": expected["--limit"]}


def test_the_script_switches_the_guides_use_exist() -> None:
    text = SCRIPT.read_text(encoding="utf-8")
    param_block = text[text.index("param(") : text.index("\n)", text.index("param("))]
    declared = set(re.findall(r"\$(\w+)", param_block))
    used = {
        switch
        for guide in GUIDES
        for line in guide.read_text(encoding="utf-8").splitlines()
        if "numerflow-services.ps1" in line
        for switch in re.findall(r"\s-([A-Z]\w+)", line.split("numerflow-services.ps1", 1)[1])
    }
    assert "Install" in used and used <= declared, used - declared
