#Requires -Version 7
<#
.SYNOPSIS
    Keeps numerflow's Prefect server and worker running on Windows (PowerShell 7).

.DESCRIPTION
    Without switches: runs `uv run prefect server start` and `uv run prefect worker start` in the
    checkout (the commands deployments/windows/README.md gives), restarts either one when it
    exits, and writes their logs to $env:LOCALAPPDATA\numerflow\logs. Stop with Ctrl+C (the
    worker is stopped first).

    -Install makes sure %APPDATA%\numerflow\prefect.env holds PREFECT_SERVER_ENCRYPTION_KEY
    (generating one, readable by you only, if it does not), registers a scheduled task that
    runs this script at logon, hidden, restarted by Task Scheduler if it fails, and starts it.
    -Uninstall stops and removes the task and the processes it started.

.EXAMPLE
    pwsh -File deployments\windows\numerflow-services.ps1 -Install
    pwsh -File deployments\windows\numerflow-services.ps1 -Install -CudaVisibleDevices 0
    pwsh -File deployments\windows\numerflow-services.ps1          # in the foreground, for a look
#>
[CmdletBinding()]
param(
    [string]$Checkout = (Resolve-Path "$PSScriptRoot\..\..").Path,
    [string]$Pool = "numerflow-gpu",        # config/deployments.yaml: work_pool
    [int]$Limit = 1,                        # config/deployments.yaml: concurrency
    [int]$Port = 4200,
    [string]$CudaVisibleDevices = "",       # empty: leave CUDA_VISIBLE_DEVICES as it is
    [switch]$Install,
    [switch]$Uninstall
)
$ErrorActionPreference = "Stop"
$TaskName = "numerflow-services"
$State = Join-Path $env:LOCALAPPDATA "numerflow"
$Logs = Join-Path $State "logs"
$PidFile = Join-Path $State "services.pids"
$EnvFile = Join-Path $env:APPDATA "numerflow\prefect.env"

$Uv = (Get-Command uv -ErrorAction SilentlyContinue).Source
if (-not $Uv) { throw "uv not found on PATH: install it (deployments\windows\README.md, step 1) and open a new terminal" }

# The commands, as deployments/windows/README.md prints them (tests/test_windows_supervisor.py checks
# that each exists with these options).
$ServerCommand = @("run", "prefect", "server", "start", "--host", "127.0.0.1", "--port", "$Port")
$WorkerCommand = @("run", "prefect", "worker", "start", "--pool", $Pool, "--limit", "$Limit", "--name", "$env:COMPUTERNAME-numerflow")
$NewKeyCommand = @("run", "python", "-c", "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())")

function Write-Log([string]$Message) {
    $line = "$(Get-Date -Format s) $Message"
    Write-Host $line
    Add-Content -Path (Join-Path $Logs "supervisor.log") -Value $line
}

function Stop-Tree([int]$ProcessId) {
    # `uv run` starts Python as a child: stop the whole tree, not just uv.
    & taskkill.exe /PID $ProcessId /T /F 2>&1 | Out-Null
}

function Stop-Leftovers {
    # Processes of a supervisor that was killed (its `finally` never ran) still hold the port.
    if (Test-Path $PidFile) {
        foreach ($id in Get-Content $PidFile) {
            if (Get-Process -Id $id -ErrorAction SilentlyContinue) { Stop-Tree $id }
        }
        Remove-Item $PidFile
    }
}

function Initialize-EncryptionKey {
    if ((Test-Path $EnvFile) -and (Select-String -Path $EnvFile -Pattern '^\s*PREFECT_SERVER_ENCRYPTION_KEY\s*=' -Quiet)) {
        return
    }
    New-Item -ItemType Directory -Force -Path (Split-Path $EnvFile) | Out-Null
    $key = (& $Uv --directory $Checkout @NewKeyCommand).Trim()
    if ($LASTEXITCODE -ne 0 -or -not $key) { throw "could not generate an encryption key with: uv $($NewKeyCommand -join ' ')" }
    Add-Content -Path $EnvFile -Value "PREFECT_SERVER_ENCRYPTION_KEY=$key"
    & icacls.exe $EnvFile /inheritance:r /grant:r "$($env:USERNAME):(R,W)" | Out-Null
    Write-Host "Wrote a new PREFECT_SERVER_ENCRYPTION_KEY to $EnvFile (back it up; never change it)."
    Write-Host "Blocks saved before under another key cannot be read: run 'uv run numerflow setup credentials' again."
}

if ($Install) {
    Initialize-EncryptionKey
    $arguments = "-NoProfile -WindowStyle Hidden -File `"$PSCommandPath`" -Checkout `"$Checkout`" " +
        "-Pool $Pool -Limit $Limit -Port $Port -CudaVisibleDevices `"$CudaVisibleDevices`""
    $action = New-ScheduledTaskAction -Execute "pwsh.exe" -Argument $arguments -WorkingDirectory $Checkout
    $trigger = New-ScheduledTaskTrigger -AtLogOn -User $env:USERNAME
    $settings = New-ScheduledTaskSettingsSet -RestartCount 999 -RestartInterval (New-TimeSpan -Minutes 1) `
        -ExecutionTimeLimit ([TimeSpan]::Zero) -StartWhenAvailable -MultipleInstances IgnoreNew `
        -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries
    Register-ScheduledTask -TaskName $TaskName -Action $action -Trigger $trigger -Settings $settings -Force | Out-Null
    Start-ScheduledTask -TaskName $TaskName
    Write-Host "Registered and started scheduled task '$TaskName' (runs at every logon). Logs: $Logs"
    return
}
if ($Uninstall) {
    Stop-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue
    Unregister-ScheduledTask -TaskName $TaskName -Confirm:$false
    Stop-Leftovers
    Write-Host "Removed scheduled task '$TaskName' and stopped its processes."
    return
}

New-Item -ItemType Directory -Force -Path $Logs | Out-Null
$env:PREFECT_API_URL = "http://127.0.0.1:$Port/api"
$env:PREFECT_SERVER_ANALYTICS_ENABLED = "false"
# Prefect keeps finished flow runs forever unless db_vacuum's flow_runs is on: delete those that
# ended more than 90 days ago (12 weekly runs are 84 days: the run history stays whole).
$env:PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED = "events,flow_runs"
$env:PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD = "7776000"
if ($CudaVisibleDevices) { $env:CUDA_VISIBLE_DEVICES = $CudaVisibleDevices }
# Lines NAME=VALUE, e.g. PREFECT_SERVER_ENCRYPTION_KEY=... (written by -Install).
if (Test-Path $EnvFile) {
    foreach ($line in Get-Content $EnvFile) {
        if ($line -match '^\s*([A-Z_][A-Z0-9_]*)\s*=\s*(.*)$') { Set-Item "env:$($Matches[1])" $Matches[2] }
    }
}

function Start-Supervised([string]$Name, [string[]]$Command) {
    $log = Join-Path $Logs "$Name.log"
    if (Test-Path $log) { Move-Item -Force $log (Join-Path $Logs "$Name.previous.log") }
    Write-Log "starting $Name`: uv $($Command -join ' ')"
    Start-Process -FilePath $Uv -ArgumentList $Command -WorkingDirectory $Checkout -NoNewWindow -PassThru `
        -RedirectStandardOutput $log -RedirectStandardError (Join-Path $Logs "$Name.err.log")
}

function Test-Running($Process) { $null -ne $Process -and -not $Process.HasExited }

function Test-Healthy {
    try { return (Invoke-RestMethod "$env:PREFECT_API_URL/health" -TimeoutSec 2) -eq $true } catch { return $false }
}

function Wait-Healthy {
    foreach ($i in 1..60) {
        if (Test-Healthy) { return }
        Start-Sleep -Seconds 2
    }
    Write-Log "Prefect server did not become healthy on port $Port within 2 minutes (see $Logs\server.err.log)"
}

Stop-Leftovers
$server = $null; $worker = $null
try {
    while ($true) {
        if (-not (Test-Running $server) -and -not (Test-Healthy)) {
            $server = Start-Supervised "server" $ServerCommand
            Wait-Healthy
        }
        if (-not (Test-Running $worker)) {
            $worker = Start-Supervised "worker" $WorkerCommand
        }
        Set-Content -Path $PidFile -Value @($server.Id, $worker.Id | Where-Object { $_ })
        Start-Sleep -Seconds 15
    }
}
finally {
    # Worker first: a worker whose server is already gone can hang on shutdown.
    foreach ($process in @($worker, $server)) {
        if (Test-Running $process) { Stop-Tree $process.Id }
    }
    Remove-Item $PidFile -ErrorAction SilentlyContinue
}
