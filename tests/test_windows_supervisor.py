"""The PowerShell 7 supervisor and the Windows guide, read as text (there is no PowerShell here):
every `prefect`/`numerflow` command they run or print exists with the options they give it, and
each fix of the Windows review is in the script (what Windows then does is reasoned about, not
run: see deployments/windows/README.md, "What was checked, and how")."""

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
GUIDES = [ROOT / "deployments/windows/README.md", ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
# A PowerShell array element: a double-quoted string (backtick escapes), a single-quoted one, a variable.
TOKEN = re.compile(r'"((?:[^"`]|`.)*)"|\'([^\']*)\'|(\$[\w:]+)|(,)|(\))')


VENV_PROGRAM = r"\.?\\?\.venv\\Scripts\\(prefect|numerflow)\.exe"  # as the guide runs them
# The program each `$NameCommand` array of the script is given to.
PROGRAMS = {"ServerCommand": "prefect", "WorkerCommand": "prefect", "WakeTimesCommand": "numerflow"}


def script_text() -> str:
    return SCRIPT.read_text(encoding="utf-8")


def code(text: str) -> str:
    """The script without its comments (`<# ... #>`, whole-line `#` and trailing ` # ...`)."""
    text = re.sub(r"<#.*?#>", "", text, flags=re.S)
    lines = (line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return "\n".join(re.sub(r"\s#\s.*$", "", line) for line in lines)


def block(text: str, opening: str) -> str:
    """The body of the `opening {` block, up to its matching brace."""
    start = text.index(opening)
    depth = 0
    for position in range(text.index("{", start), len(text)):
        depth += {"{": 1, "}": -1}.get(text[position], 0)
        if depth == 0:
            return text[start : position + 1]
    raise AssertionError(f"no end to {opening!r}")


def script_commands() -> dict[str, list[str]]:
    """`$NameCommand = @(...)` arrays of the script, by name, as their program's arguments."""
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
    """`uv run prefect|numerflow ...` and `.venv\\Scripts\\prefect.exe|numerflow.exe ...` lines in the
    guides' code blocks, split into words, as `run PROGRAM ...`."""
    found = []
    for guide in GUIDES:
        for block in re.findall(r"```(?:powershell|bash)\n(.*?)```", guide.read_text(encoding="utf-8"), re.S):
            for line in block.splitlines():
                line = line.split("#", 1)[0].strip()
                for command in re.split(r";\s*", line):
                    words = command.split()
                    if words[:3] in (["uv", "run", "prefect"], ["uv", "run", "numerflow"]):
                        found.append(words[1:])
                    venv = (
                        re.fullmatch(r"&?\s*\.?\\?\.venv\\Scripts\\(prefect|numerflow)\.exe", words[0])
                        if words
                        else None
                    )
                    if venv:
                        found.append(["run", venv.group(1), *words[1:]])
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


def test_the_script_runs_the_environments_own_executables_never_uv() -> None:
    commands = script_commands()
    assert commands["ServerCommand"][:2] == ["server", "start"]
    assert commands["WorkerCommand"][:2] == ["worker", "start"]
    text = code(script_text())
    assert '$Scripts = Join-Path $Checkout ".venv\\Scripts"' in text
    for name, program in (("Prefect", "prefect"), ("Python", "python"), ("Numerflow", "numerflow")):
        assert f'${name} = Join-Path $Scripts "{program}.exe"' in text
    assert 'Start-Supervised "server" $Prefect $ServerCommand' in text
    assert 'Start-Supervised "worker" $Prefect $WorkerCommand' in text
    assert "& $Python @NewKeyCommand" in text and "& $Numerflow @WakeTimesCommand" in text
    assert not re.search(r"(?m)^\s*(&\s*)?uv(\.exe)?\s|Get-Command uv|\$Uv\b", text)  # never runs uv
    for name in commands:  # each one is used, not just declared
        assert len(re.findall(rf"\${name}\b", text)) >= 2, name


@pytest.mark.slow  # `--help` of real commands, each a fresh interpreter
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_each_command_of_the_script_exists_with_its_options(name: str) -> None:
    _check(["run", PROGRAMS[name], *script_commands()[name]])


def test_the_script_generates_a_valid_encryption_key() -> None:
    command = script_commands()["NewKeyCommand"]
    assert command[0] == "-c"
    done = subprocess.run([sys.executable, "-c", command[1]], capture_output=True, text=True, timeout=60)
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
    text = script_text()
    defaults = dict(re.findall(r"\[(?:string|int)\]\$(Pool|Limit)\s*=\s*\"?([\w-]+)", text))
    assert defaults == {"Pool": expected["--pool"], "Limit": expected["--limit"]}


def test_the_script_switches_the_guides_use_exist() -> None:
    text = script_text()
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


# Each fix of the Windows review (deployments/windows/README.md), as the script writes it.


def test_the_task_runs_powershell_by_its_full_path() -> None:
    text = code(script_text())
    find = block(text, "function Find-Pwsh")
    assert 'Join-Path $PSHOME "pwsh.exe"' in find  # this PowerShell, wherever it is installed
    assert 'Join-Path $env:LOCALAPPDATA "Microsoft\\WindowsApps\\pwsh.exe"' in find  # the Store's alias
    assert '"current\\pwsh.exe"' in find  # Scoop's link that follows updates
    assert re.findall(r"New-ScheduledTaskAction -Execute (\S+)", text) == ["(Join-Path"]
    assert "$pwsh = Find-Pwsh" in block(text, "function New-HiddenAction")
    assert '"pwsh.exe"' not in text.replace('"Microsoft\\WindowsApps\\pwsh.exe"', "").replace(
        'Join-Path $PSHOME "pwsh.exe"', ""
    )


def test_nothing_shows_a_window_or_shares_a_console() -> None:
    text = code(script_text())
    action = block(text, "function New-HiddenAction")
    assert 'System32\\conhost.exe"' in action and '"--headless `"$pwsh`"' in action
    assert "-WindowStyle" not in text and "-NoNewWindow" not in text
    start = block(text, "function Start-Supervised")
    assert "$info.CreateNoWindow = $true" in start and "$info.UseShellExecute = $false" in start
    # Every task's action is the hidden one.
    assert text.count("New-HiddenAction") == 3  # the function, the services task, the wake task


def test_one_supervisor_at_a_time() -> None:
    text = code(script_text())
    assert '[System.Threading.Mutex]::new($false, "Global\\numerflow-services")' in text
    assert "$owned = $mutex.WaitOne(0)" in text
    assert re.search(r"if \(-not \$owned\) \{[^}]*exit 0", text)
    # Taken before anything is stopped or started, and released at the end.
    run = text[text.index("$mutex = ") :]
    assert (
        run.index("if (-not $owned)") < run.index("Stop-Leftovers") < run.index('Start-Supervised "server"')
    )
    assert "$mutex.ReleaseMutex()" in block(run, "finally")


def test_a_pid_is_stopped_only_if_its_start_time_matches() -> None:
    text = code(script_text())
    save = block(text, "function Save-Pids")
    assert "$process.StartTime.ToUniversalTime().Ticks" in save
    leftovers = block(text, "function Stop-Leftovers")
    check = "$process.StartTime.ToUniversalTime().Ticks -eq [long]$ticks"
    assert check in leftovers and leftovers.index(check) < leftovers.index("Stop-Tree")


def test_errors_in_the_loop_are_logged_and_survived() -> None:
    text = code(script_text())
    loop = block(text, "while ($true)")
    turn = block(loop, "try")
    assert "Start-Supervised" in turn
    handler = block(loop, "catch")
    assert "Write-Log" in handler and "throw" not in handler and "exit" not in handler
    assert loop.index("catch") < loop.index("Start-Sleep")  # the loop goes on after a failed turn
    assert "catch { }" in block(text, "function Write-Log")  # a full disk does not end it either


def test_a_missing_environment_is_written_to_the_log() -> None:
    text = code(script_text())
    check = block(text, "function Assert-Environment")
    assert "foreach ($program in $Prefect, $Python, $Numerflow)" in check
    assert re.search(r"Write-Log \"not found: \$program\..*uv sync --locked.*\"\s*\n\s*exit 1", check)
    # The log folder exists before anything can fail, and both the install and the run check first.
    assert text.index("New-Item -ItemType Directory -Force -Path $Logs") < text.index("if ($Install)")
    assert (
        block(text, "if ($Install)").removeprefix("if ($Install) {").lstrip().startswith("Assert-Environment")
    )
    assert text.index("Assert-Environment\n$env:PREFECT_API_URL") > text.index("$owned = $mutex")


def test_a_trigger_brings_a_dead_supervisor_back() -> None:
    install = block(code(script_text()), "if ($Install)")
    every5 = "New-ScheduledTaskTrigger -Once -At (Get-Date) -RepetitionInterval (New-TimeSpan -Minutes 5)"
    assert f"$every5 = {every5}" in install
    assert "-Trigger @($atLogOn, $every5)" in install
    assert "-MultipleInstances IgnoreNew" in install  # and the mutex sends any second one away


def test_the_services_run_at_normal_priority_with_utf8_logs_that_keep_crash_reasons() -> None:
    text = code(script_text())
    assert "-Priority 4" in block(text, "if ($Install)")
    assert '$env:PYTHONUTF8 = "1"' in text and '$env:PYTHONIOENCODING = "utf-8"' in text
    start = block(text, "function Start-Supervised")
    assert '>> `"$log`" 2>&1' in start  # appended, stdout and stderr in one log
    assert "-RedirectStandardError" not in text and ".err.log" not in text
    assert "$Name exited with code $($Process.ExitCode)" in block(text, "function Confirm-Exit")


def test_install_sets_the_api_url_for_the_user_and_waits_for_the_server() -> None:
    install = block(code(script_text()), "if ($Install)")
    assert '[Environment]::SetEnvironmentVariable("PREFECT_API_URL", $ApiUrl, "User")' in install
    waited = install[install.index("Start-ScheduledTask -TaskName $TaskName") :]
    assert re.search(r"if \(-not \(Wait-Healthy \d+\)\) \{[^}]*exit 1", waited)
    assert 'Invoke-RestMethod "$ApiUrl/health"' in block(code(script_text()), "function Test-Healthy")


def test_install_registers_a_task_that_wakes_the_pc_before_each_run() -> None:
    text = code(script_text())
    assert "Register-WakeTask" in block(text, "if ($Install)")
    wake = block(text, "function Register-WakeTask")
    assert "$json = & $Numerflow @WakeTimesCommand" in wake
    assert "New-ScheduledTaskTrigger -Weekly -DaysOfWeek $time.days" in wake
    assert '$trigger.StartBoundary = "2024-01-01T$($time.at):00Z"' in wake  # UTC
    assert "-WakeToRun" in wake and "-TaskName $WakeTaskName" in wake
    # Woken, the PC is held awake past the run's start (Windows sleeps again after ~2 min).
    stay = block(text, "if ($StayAwakeMinutes -gt 0)")
    assert "Set-StayAwake ($ES_CONTINUOUS -bor $ES_SYSTEM_REQUIRED)" in stay
    assert "finally { Set-StayAwake $ES_CONTINUOUS }" in stay
    assert "SetThreadExecutionState" in block(text, "function Set-StayAwake")
    stop = block(text, "if ($Stop -or $Uninstall)")
    assert "$WakeTaskName" in stop
    # -Stop disables the services task before stopping it: the 5-minute trigger waits for -Install.
    assert stop.index("Disable-ScheduledTask -TaskName $TaskName") < stop.index("Stop-ScheduledTask")
