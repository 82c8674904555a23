#Requires -Version 7
<#
.SYNOPSIS
    Keeps numerflow's Prefect server and worker running on Windows (PowerShell 7).

.DESCRIPTION
    Without switches: runs `prefect server start` and `prefect worker start` from the checkout's
    own environment (.venv\Scripts, the commands deployments/windows/README.md gives), restarts
    either one when it exits, and appends their output to $env:LOCALAPPDATA\numerflow\logs. One
    supervisor runs at a time: a second one (a logon, the 5-minute trigger, a terminal) exits at
    once. Stop it with Ctrl+C (the worker is stopped first) or -Stop.

    -Install makes sure %APPDATA%\numerflow\prefect.env holds PREFECT_SERVER_ENCRYPTION_KEY
    (generating one, readable by you only, if it does not), sets PREFECT_API_URL for your account,
    registers the scheduled task numerflow-services (this script at logon and every 5 minutes,
    in a console with no window, at normal priority) and the task numerflow-wake (wakes the PC a
    few minutes before each scheduled run), starts the services and waits until the server answers.
    -Stop disables the task and stops the processes it started (before an update; -Install
    starts them again).
    -Uninstall stops them and removes both tasks.

.EXAMPLE
    pwsh -File deployments\windows\numerflow-services.ps1 -Install
    pwsh -File deployments\windows\numerflow-services.ps1 -Install -CudaVisibleDevices 0
    pwsh -File deployments\windows\numerflow-services.ps1 -Stop
#>
[CmdletBinding()]
param(
    [string]$Checkout = (Resolve-Path "$PSScriptRoot\..\..").Path,
    [string]$Pool = "numerflow-gpu",        # config/deployments.yaml: work_pool
    [int]$Limit = 1,                        # config/deployments.yaml: concurrency
    [int]$Port = 4200,
    [string]$CudaVisibleDevices = "",       # empty: leave CUDA_VISIBLE_DEVICES as it is
    [int]$StayAwakeMinutes = 0,             # the wake task's run: hold the PC awake this long
    [switch]$Install,
    [switch]$Stop,
    [switch]$Uninstall
)
$ErrorActionPreference = "Stop"
$TaskName = "numerflow-services"
$WakeTaskName = "numerflow-wake"
$State = Join-Path $env:LOCALAPPDATA "numerflow"
$Logs = Join-Path $State "logs"
$PidFile = Join-Path $State "services.pids"
$EnvFile = Join-Path $env:APPDATA "numerflow\prefect.env"
$ApiUrl = "http://127.0.0.1:$Port/api"
$MaxLogBytes = 20MB           # a service's log is moved to .previous.log past this, at its next start
$WakeHoldMinutes = 30         # from the wake-up to past the run's start, when the run holds it itself
$ES_CONTINUOUS = [uint32]2147483648   # 0x80000000 (a hex literal would be a negative Int32)
$ES_SYSTEM_REQUIRED = [uint32]1

# The environment's own executables, never `uv run`: uv would re-sync .venv at every restart, and
# after a `git pull` fail to replace the DLLs the running services hold, restarting in a loop.
$Scripts = Join-Path $Checkout ".venv\Scripts"
$Prefect = Join-Path $Scripts "prefect.exe"
$Python = Join-Path $Scripts "python.exe"
$Numerflow = Join-Path $Scripts "numerflow.exe"

# The commands, as deployments/windows/README.md prints them (tests/test_windows_supervisor.py checks
# that each exists with these options).
$ServerCommand = @("server", "start", "--host", "127.0.0.1", "--port", "$Port")
$WorkerCommand = @("worker", "start", "--pool", $Pool, "--limit", "$Limit", "--name", "$env:COMPUTERNAME-numerflow")
$NewKeyCommand = @("-c", "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())")
$WakeTimesCommand = @("wake-times", "--json", "--config-dir", "$Checkout\config")

New-Item -ItemType Directory -Force -Path $Logs | Out-Null

function Write-Log([string]$Message) {
    $line = "$(Get-Date -Format s) $Message"
    Write-Host $line
    # Never let the log itself (a full disk) end the supervisor.
    try { Add-Content -Path (Join-Path $Logs "supervisor.log") -Value $line -Encoding utf8 } catch { }
}

function Assert-Environment {
    foreach ($program in $Prefect, $Python, $Numerflow) {
        if (-not (Test-Path $program)) {
            Write-Log "not found: $program. In $Checkout run 'uv sync --locked' (deployments\windows\README.md, step 1); if uv is missing too, install it (same step) and open a new terminal"
            exit 1
        }
    }
}

function Find-Pwsh {
    # By full path: Task Scheduler resolves a bare pwsh.exe against the PATH its service read at
    # boot, so a PowerShell installed since, or from the Store or Scoop, is not found
    # (0x80070002; PowerShell/PowerShell#13302).
    if ($PSHOME -match '\\WindowsApps\\') {
        # Store: the install folder is versioned and cannot be run by path; its alias can.
        return Join-Path $env:LOCALAPPDATA "Microsoft\WindowsApps\pwsh.exe"
    }
    if ($PSHOME -match '^(.*\\scoop\\apps\\pwsh)\\[^\\]+$') {
        return Join-Path $Matches[1] "current\pwsh.exe"  # Scoop: the link that follows updates
    }
    return Join-Path $PSHOME "pwsh.exe"
}

function Stop-Tree([int]$ProcessId) {
    # A service runs as cmd.exe (its log redirection) with Prefect below it: stop the whole tree.
    # (Windows does not end children with their parent.)
    & taskkill.exe /PID $ProcessId /T /F 2>&1 | Out-Null
}

function Test-Running($Process) { $null -ne $Process -and -not $Process.HasExited }

function Save-Pids([object[]]$Processes) {
    # With each pid its start time: a pid is reused once its process ends, and this file outlives
    # logoffs and reboots.
    $lines = foreach ($process in $Processes) {
        if (Test-Running $process) { "$($process.Id) $($process.StartTime.ToUniversalTime().Ticks)" }
    }
    Set-Content -Path $PidFile -Value $lines -Encoding utf8
}

function Stop-Leftovers {
    # Processes of a supervisor that was killed (its `finally` never ran) still hold the port.
    if (-not (Test-Path $PidFile)) { return }
    foreach ($line in Get-Content $PidFile) {
        $id, $ticks = $line -split ' '
        $process = Get-Process -Id $id -ErrorAction SilentlyContinue
        if ($process -and $process.StartTime.ToUniversalTime().Ticks -eq [long]$ticks) {
            Stop-Tree $process.Id
        }
    }
    Remove-Item $PidFile
}

function Initialize-EncryptionKey {
    if ((Test-Path $EnvFile) -and (Select-String -Path $EnvFile -Pattern '^\s*PREFECT_SERVER_ENCRYPTION_KEY\s*=' -Quiet)) {
        return
    }
    New-Item -ItemType Directory -Force -Path (Split-Path $EnvFile) | Out-Null
    $key = (& $Python @NewKeyCommand).Trim()
    if ($LASTEXITCODE -ne 0 -or -not $key) { throw "could not generate an encryption key with: $Python $($NewKeyCommand -join ' ')" }
    Add-Content -Path $EnvFile -Value "PREFECT_SERVER_ENCRYPTION_KEY=$key"
    & icacls.exe $EnvFile /inheritance:r /grant:r "$($env:USERNAME):(R,W)" | Out-Null
    Write-Host "Wrote a new PREFECT_SERVER_ENCRYPTION_KEY to $EnvFile (back it up; never change it)."
    Write-Host "Blocks saved before under another key cannot be read: run 'uv run numerflow setup credentials' again."
}

function Test-Healthy {
    try { return (Invoke-RestMethod "$ApiUrl/health" -TimeoutSec 2) -eq $true } catch { return $false }
}

function Wait-Healthy([int]$Seconds) {
    $deadline = (Get-Date).AddSeconds($Seconds)
    while ((Get-Date) -lt $deadline) {
        if (Test-Healthy) { return $true }
        Start-Sleep -Seconds 2
    }
    return $false
}

function Set-StayAwake([uint32]$Flags) {
    # SetThreadExecutionState: the flag belongs to this thread, which sets and clears it.
    if (-not ("Numerflow.Power" -as [type])) {
        Add-Type -Namespace Numerflow -Name Power -MemberDefinition '[DllImport("kernel32.dll")] public static extern uint SetThreadExecutionState(uint esFlags);'
    }
    [Numerflow.Power]::SetThreadExecutionState($Flags) | Out-Null
}

function New-HiddenAction([string]$Arguments) {
    # conhost --headless: a console with no window whatever the default terminal is (Windows
    # Terminal ignores -WindowStyle Hidden, microsoft/terminal#12464), so no window appears at
    # logon and none can be closed by mistake.
    $pwsh = Find-Pwsh
    $common = "-NoProfile -NonInteractive -ExecutionPolicy Bypass -File `"$PSCommandPath`" -Checkout `"$Checkout`""
    New-ScheduledTaskAction -Execute (Join-Path $env:SystemRoot "System32\conhost.exe") `
        -Argument "--headless `"$pwsh`" $common $Arguments" -WorkingDirectory $Checkout
}

function Register-WakeTask {
    # Each time is a few minutes before a run of config\deployments.yaml, in UTC; a start boundary
    # ending in Z keeps the trigger in UTC whatever the time zone and daylight saving.
    $json = & $Numerflow @WakeTimesCommand
    if ($LASTEXITCODE -ne 0) { throw "could not read the schedule: $Numerflow $($WakeTimesCommand -join ' ')" }
    $triggers = foreach ($time in ($json | ConvertFrom-Json)) {
        $trigger = New-ScheduledTaskTrigger -Weekly -DaysOfWeek $time.days -At "00:00"
        $trigger.StartBoundary = "2024-01-01T$($time.at):00Z"
        $trigger
    }
    $settings = New-ScheduledTaskSettingsSet -WakeToRun -StartWhenAvailable -AllowStartIfOnBatteries `
        -DontStopIfGoingOnBatteries -ExecutionTimeLimit (New-TimeSpan -Minutes ($WakeHoldMinutes + 5))
    $action = New-HiddenAction "-StayAwakeMinutes $WakeHoldMinutes"
    Register-ScheduledTask -TaskName $WakeTaskName -Action $action -Trigger $triggers -Settings $settings -Force | Out-Null
    foreach ($time in ($json | ConvertFrom-Json)) { Write-Host "  wakes at $($time.at) UTC on $($time.days -join ', ')" }
}

if ($Install) {
    Assert-Environment
    Initialize-EncryptionKey
    # Every terminal opened from now on talks to this server, never to a temporary one.
    [Environment]::SetEnvironmentVariable("PREFECT_API_URL", $ApiUrl, "User")
    $arguments = "-Pool $Pool -Limit $Limit -Port $Port"
    if ($CudaVisibleDevices) { $arguments += " -CudaVisibleDevices `"$CudaVisibleDevices`"" }
    $atLogOn = New-ScheduledTaskTrigger -AtLogOn -User "$env:USERDOMAIN\$env:USERNAME"
    # Every 5 minutes: brings back a supervisor that died; a running one makes the new one exit.
    $every5 = New-ScheduledTaskTrigger -Once -At (Get-Date) -RepetitionInterval (New-TimeSpan -Minutes 5)
    # Priority 4 is normal (the default, 7, is below normal, and every run would inherit it).
    $settings = New-ScheduledTaskSettingsSet -ExecutionTimeLimit ([TimeSpan]::Zero) -StartWhenAvailable `
        -MultipleInstances IgnoreNew -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -Priority 4
    Register-ScheduledTask -TaskName $TaskName -Action (New-HiddenAction $arguments) -Trigger @($atLogOn, $every5) `
        -Settings $settings -Force | Out-Null
    Write-Host "Registered scheduled task '$TaskName' (at logon and every 5 minutes) and '$WakeTaskName':"
    Register-WakeTask
    Start-ScheduledTask -TaskName $TaskName
    Write-Host "Waiting for the Prefect server at $ApiUrl ..."
    if (-not (Wait-Healthy 180)) {
        Write-Host "The server did not answer within 3 minutes. See $Logs\server.log and $Logs\supervisor.log."
        exit 1
    }
    Write-Host "The server answers. PREFECT_API_URL=$ApiUrl is set for your account: terminals opened from now on use it."
    return
}
if ($Stop -or $Uninstall) {
    # Disabled first, so that the 5-minute trigger does not start it again during an update.
    Disable-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue | Out-Null
    Stop-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue
    Stop-Leftovers
    if ($Uninstall) {
        foreach ($name in $TaskName, $WakeTaskName) {
            Unregister-ScheduledTask -TaskName $name -Confirm:$false -ErrorAction SilentlyContinue
        }
        [Environment]::SetEnvironmentVariable("PREFECT_API_URL", $null, "User")
        Write-Host "Removed the scheduled tasks '$TaskName' and '$WakeTaskName' and stopped the services."
    }
    else {
        Write-Host "Stopped the services and disabled the task. Start them again with: -Install"
    }
    return
}
if ($StayAwakeMinutes -gt 0) {
    # The wake task's run. A PC woken by a timer sleeps again after about 2 minutes with nobody
    # at it (the unattended sleep timeout): hold it awake until the run has started and holds
    # the PC itself; make sure the services run.
    Set-StayAwake ($ES_CONTINUOUS -bor $ES_SYSTEM_REQUIRED)
    try {
        Write-Log "woken for a scheduled run: holding the PC awake for $StayAwakeMinutes minutes"
        Start-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue
        Start-Sleep -Seconds (60 * $StayAwakeMinutes)
    }
    finally { Set-StayAwake $ES_CONTINUOUS }
    return
}

# One supervisor at a time: a second one would kill the first one's services and fight over the
# port, the pid file and the logs. Global: one per PC, whichever session starts it.
$mutex = [System.Threading.Mutex]::new($false, "Global\numerflow-services")
try { $owned = $mutex.WaitOne(0) }
catch [System.Threading.AbandonedMutexException] { $owned = $true }  # its owner died: ours now
if (-not $owned) {
    Write-Host "A numerflow-services supervisor is already running; this one exits. Watch it with: Get-Content -Wait $Logs\worker.log"
    exit 0
}

Assert-Environment
$env:PREFECT_API_URL = $ApiUrl
$env:PREFECT_SERVER_ANALYTICS_ENABLED = "false"
$env:PYTHONUTF8 = "1"                # logs in UTF-8, not the ANSI code page
$env:PYTHONIOENCODING = "utf-8"
# Prefect keeps finished flow runs forever unless db_vacuum's flow_runs is on: delete those that
# ended more than 90 days ago (12 weekly runs are 84 days: the run history stays whole).
$env:PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED = "events,flow_runs"
$env:PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD = "7776000"
# Runs' concurrency leases on disk, not in the server's memory: a restarted server otherwise
# forgets them and each run still going ends Crashed at its next lease renewal.
$env:PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE = "prefect.server.concurrency.lease_storage.filesystem"
if ($CudaVisibleDevices) { $env:CUDA_VISIBLE_DEVICES = $CudaVisibleDevices }
# Lines NAME=VALUE, e.g. PREFECT_SERVER_ENCRYPTION_KEY=... (written by -Install).
if (Test-Path $EnvFile) {
    foreach ($line in Get-Content $EnvFile) {
        if ($line -match '^\s*([A-Z_][A-Z0-9_]*)\s*=\s*(.*)$') { Set-Item "env:$($Matches[1])" $Matches[2] }
    }
}

function Start-Supervised([string]$Name, [string]$Program, [string[]]$Arguments) {
    $log = Join-Path $Logs "$Name.log"
    if ((Test-Path $log) -and (Get-Item $log).Length -gt $MaxLogBytes) {
        Move-Item -Force $log (Join-Path $Logs "$Name.previous.log")
    }
    $commandLine = (@($Program) + $Arguments | ForEach-Object { "`"$_`"" }) -join " "
    Write-Log "starting $Name`: $commandLine"
    # cmd appends stdout and stderr to one log (>>: the reasons of earlier crashes stay); no window
    # (CreateNoWindow): a console of its own that no one sees or closes, so that the services
    # never share one console.
    $info = [System.Diagnostics.ProcessStartInfo]::new((Join-Path $env:SystemRoot "System32\cmd.exe"))
    $info.Arguments = "/d /s /c `"$commandLine >> `"$log`" 2>&1`""
    $info.UseShellExecute = $false
    $info.CreateNoWindow = $true
    $info.WorkingDirectory = $Checkout
    [System.Diagnostics.Process]::Start($info)
}

function Confirm-Exit($Process, [string]$Name) {
    if ($null -ne $Process -and $Process.HasExited) {
        Write-Log "$Name exited with code $($Process.ExitCode) (see $Logs\$Name.log); starting it again"
    }
}

Write-Log "supervisor started (pid $PID) for $Checkout"
Stop-Leftovers
$supervisor = Get-Process -Id $PID  # in the pid file too: -Stop ends it with its services
$server = $null; $worker = $null
try {
    while ($true) {
        # Any error in a turn (a failed start, a full disk) is logged and the next turn tries again:
        # the supervisor itself never ends on one.
        try {
            if (-not (Test-Running $server) -and -not (Test-Healthy)) {
                Confirm-Exit $server "server"
                $server = Start-Supervised "server" $Prefect $ServerCommand
                if (-not (Wait-Healthy 120)) {
                    Write-Log "the Prefect server did not answer on port $Port within 2 minutes (see $Logs\server.log)"
                }
            }
            if (-not (Test-Running $worker)) {
                Confirm-Exit $worker "worker"
                $worker = Start-Supervised "worker" $Prefect $WorkerCommand
            }
            Save-Pids @($supervisor, $server, $worker)
        }
        catch {
            Write-Log "error, trying again in 15 s: $($_.Exception.Message) $($_.InvocationInfo.PositionMessage)"
        }
        Start-Sleep -Seconds 15
    }
}
finally {
    # Worker first: a worker whose server is already gone can hang on shutdown.
    foreach ($process in @($worker, $server)) {
        if (Test-Running $process) { Stop-Tree $process.Id }
    }
    Remove-Item $PidFile -ErrorAction SilentlyContinue
    Write-Log "supervisor stopped"
    $mutex.ReleaseMutex()
}
