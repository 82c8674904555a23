#Requires -Version 7
<#
.SYNOPSIS
    Keeps numerflow's Prefect server and worker running on Windows (PowerShell 7).

.DESCRIPTION
    Without switches: starts `prefect server start` and `prefect worker start` from the
    checkout's .venv, restarts either one when it exits, and writes logs to
    $env:LOCALAPPDATA\numerflow\logs. Stop with Ctrl+C (the worker is stopped first).

    -Install registers a scheduled task that runs this script at logon, hidden, so the
    services come back after a reboot. -Uninstall removes it.

.EXAMPLE
    pwsh -File deployments\windows\numerflow-services.ps1
    pwsh -File deployments\windows\numerflow-services.ps1 -Install
#>
[CmdletBinding()]
param(
    [string]$Checkout = (Resolve-Path "$PSScriptRoot\..\..").Path,
    [string]$Pool = "numerflow-gpu",
    [int]$Port = 4200,
    [switch]$Install,
    [switch]$Uninstall
)
$ErrorActionPreference = "Stop"
$TaskName = "numerflow-services"

if ($Install) {
    $action = New-ScheduledTaskAction -Execute "pwsh.exe" `
        -Argument "-NoProfile -WindowStyle Hidden -File `"$PSCommandPath`" -Checkout `"$Checkout`" -Pool $Pool -Port $Port"
    $trigger = New-ScheduledTaskTrigger -AtLogOn -User $env:USERNAME
    $settings = New-ScheduledTaskSettingsSet -RestartCount 999 -RestartInterval (New-TimeSpan -Minutes 1) `
        -ExecutionTimeLimit ([TimeSpan]::Zero) -StartWhenAvailable
    Register-ScheduledTask -TaskName $TaskName -Action $action -Trigger $trigger -Settings $settings -Force | Out-Null
    Write-Host "Registered scheduled task '$TaskName' (runs at logon). Start it now with: Start-ScheduledTask $TaskName"
    return
}
if ($Uninstall) {
    Unregister-ScheduledTask -TaskName $TaskName -Confirm:$false
    Write-Host "Removed scheduled task '$TaskName'."
    return
}

$Prefect = Join-Path $Checkout ".venv\Scripts\prefect.exe"
if (-not (Test-Path $Prefect)) { throw "$Prefect not found: run 'uv sync' in $Checkout first" }
$Logs = Join-Path $env:LOCALAPPDATA "numerflow\logs"
New-Item -ItemType Directory -Force -Path $Logs | Out-Null

$env:PREFECT_API_URL = "http://127.0.0.1:$Port/api"
$env:PREFECT_SERVER_ANALYTICS_ENABLED = "false"
# Optional: a file with lines NAME=VALUE, e.g. PREFECT_SERVER_ENCRYPTION_KEY=... (see README).
$EnvFile = Join-Path $env:APPDATA "numerflow\prefect.env"
if (Test-Path $EnvFile) {
    foreach ($line in Get-Content $EnvFile) {
        if ($line -match '^\s*([A-Z_][A-Z0-9_]*)\s*=\s*(.*)$') { Set-Item "env:$($Matches[1])" $Matches[2] }
    }
}

function Start-Service([string]$Name, [string[]]$Arguments) {
    Start-Process -FilePath $Prefect -ArgumentList $Arguments -WorkingDirectory $Checkout -NoNewWindow -PassThru `
        -RedirectStandardOutput (Join-Path $Logs "$Name.log") -RedirectStandardError (Join-Path $Logs "$Name.err.log")
}

function Wait-Healthy {
    foreach ($i in 1..60) {
        try { if ((Invoke-RestMethod "$env:PREFECT_API_URL/health" -TimeoutSec 2) -eq $true) { return } } catch { }
        Start-Sleep -Seconds 2
    }
    throw "Prefect server did not become healthy on port $Port"
}

$server = $null; $worker = $null
try {
    while ($true) {
        if ($null -eq $server -or $server.HasExited) {
            Write-Host "$(Get-Date -Format s) starting Prefect server"
            $server = Start-Service "server" @("server", "start", "--host", "127.0.0.1", "--port", "$Port")
            Wait-Healthy
        }
        if ($null -eq $worker -or $worker.HasExited) {
            Write-Host "$(Get-Date -Format s) starting Prefect worker for pool $Pool"
            $worker = Start-Service "worker" @("worker", "start", "--pool", $Pool, "--limit", "1", "--name", "$env:COMPUTERNAME-gpu")
        }
        Start-Sleep -Seconds 15
    }
}
finally {
    # Worker first: a worker whose server is already gone can hang on shutdown.
    foreach ($process in @($worker, $server)) {
        if ($null -ne $process -and -not $process.HasExited) { Stop-Process -Id $process.Id -Force }
    }
}
