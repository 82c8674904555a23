"""The text screen of `numerflow status`, from the dictionary `collect_status` returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from numerflow.hosted.status import hosted_lines
from numerflow.live.report import status_lines as live_lines
from numerflow.ops.schedule import describe_start


def status_lines(status: dict[str, Any], now: datetime) -> list[str]:
    server = status["server"]
    lines = [f"server:       {server['url'] or 'PREFECT_API_URL not set'} "
             f"({'reachable' if server['reachable'] else 'NOT reachable'})"]  # fmt: skip
    if server["reachable"]:
        lines += _pool_lines(status["work_pool"])
        lines += _setup_lines(status["credentials"], status["alerts"])
        lines += [
            f"weekly run:   {_run_line(status['latest_weekly_run'], status['latest_training'])}",
            f"round run:    {_run_line(status['latest_round_run'], None)}",
        ]
    lines.append(f"last round:   {_round_line(status['latest_round'])}")
    lines += live_lines(status["live_scores"])
    lines += hosted_lines(status.get("hosted"))
    if server["reachable"]:
        lines.append("next runs:")
        for deployment, when in status["next_runs"].items():
            start = describe_start(datetime.fromisoformat(when), now) if when else "none scheduled"
            lines.append(f"  {deployment:<26}{start}")
    lines += heartbeat_lines(status["heartbeat"])
    lines += disk_lines(status["disk"])
    lines.append("")
    lines += [f"PROBLEM: {problem}" for problem in status["problems"]] or [
        "ok: nothing stands in the next round's way"
    ]
    return lines


def _pool_lines(pool: dict[str, Any]) -> list[str]:
    if not pool["exists"]:
        return [f"work pool:    {pool['name']} missing"]
    paused = ", PAUSED" if pool["paused"] else ""
    lines = [f"work pool:    {pool['name']} (concurrency {pool['concurrency_limit']}{paused})"]
    for worker in pool["workers"] or [{"name": "none", "online": False, "last_heartbeat": None}]:
        seen = f", last heartbeat {worker['last_heartbeat']}" if worker["last_heartbeat"] else ""
        lines.append(f"  worker {worker['name']}: {'online' if worker['online'] else 'offline'}{seen}")
    return lines


def _setup_lines(credentials: dict[str, Any], alerts: dict[str, Any]) -> list[str]:
    models = ", ".join(credentials["models"]) or "no model ids"
    have = f"present ({models})" if credentials["present"] else "MISSING"
    need = "" if credentials["needed"] else " (not needed: download and upload are off)"
    block = alerts["block"] or "none (alerts.yaml block: null)"
    if alerts["block_present"] is False:
        block += " MISSING"
    automations = ", ".join(f"{name} {state}" for name, state in alerts["automations"].items())
    return [
        f"credentials:  numerai-credentials/{credentials['block']} {have}{need}",
        f"alert block:  {block}",
        f"automations:  {automations}",
    ]


def _run_line(run: dict[str, Any] | None, training: dict[str, Any] | None) -> str:
    if run is None:
        return "none yet"
    line = f"{run['name']} {run['state']} (started {run['started']})"
    if run["message"]:
        line += f": {run['message']}"
    for slot, trained in (training or {}).items():
        if trained["validation_corr"] is not None:
            line += f"; {slot} trained {trained['run_id']}: validation CORR {trained['validation_corr']:.4f}"
    return line


def _round_line(latest: dict[str, Any] | None) -> str:
    if latest is None:
        return "no uploads recorded"
    uploads = ", ".join(f"{model} {sid}" for model, sid in latest["uploads"].items())
    return f"round {latest['round']}: {uploads}"


def heartbeat_lines(heartbeat: dict[str, Any]) -> list[str]:
    lines = []
    for kind, check in heartbeat.items():
        if not check["set"]:
            lines.append(
                f"heartbeat:    {kind} not set (alerts.yaml heartbeat.{kind}: no alarm outside this box)"
            )
            continue
        success = check["last_success"] or "never"
        error = f"; last ping FAILED {check['last_error']}" if check["last_error"] else ""
        lines.append(f"heartbeat:    {kind} -> {check['host']}, last success ping {success}{error}")
    return lines


def disk_lines(disk: dict[str, Any]) -> list[str]:
    sizes = ", ".join(f"{name} {_size(size)}" for name, size in disk["parts"].items())
    frees = (
        f"{disk['retention_removes']} item(s), {_size(disk['retention_frees'])} (`numerflow prune --dry-run`)"
    )
    return [f"disk:         {sizes}", f"retention:    would free {frees}"]


def _size(size: int | None) -> str:
    return "-" if size is None else f"{size / 2**20:,.1f} MiB"
