"""Pings to an external dead man's switch, the one alarm that still works when this box is off.

The healthchecks.io protocol, which its self-hosted form, Uptime Kuma's push monitors, Cronitor
and Better Stack also accept (https://healthchecks.io/docs/http_api/): `<url>/start` when a run
starts, `<url>` when it succeeds, `<url>/fail` with a one-line reason as the body when it fails.
The monitor alerts when a success does not arrive within the check's schedule and grace time:
machine off or asleep, server or worker dead, disk full; none of which a Prefect automation on
this box can report.

A ping never fails or holds up a run: a short timeout, every error logged and swallowed. The
body carries only the run's name, state and error message, with URL query strings (where signed
upload links keep their signatures) removed. The outcome of each ping is recorded in
`<work_dir>/heartbeat/<kind>.json` for `numerflow status`.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from numerflow.config.models import HEARTBEAT_URL_PATTERN, HeartbeatConfig
from numerflow.io import write_json_atomic, write_text_atomic

logger = logging.getLogger("numerflow.heartbeat")

Kind = Literal["round", "weekly"]
Signal = Literal["start", "success", "fail"]
KINDS: tuple[Kind, ...] = ("round", "weekly")
REASON_LIMIT = 500  # characters of the failure reason sent; the run's own log has the rest
QUERY = re.compile(r"(https?://[^\s?#]+)[?#]\S*")
STATE_DIR = "heartbeat"


def ping_url(base: str, signal: Signal) -> str:
    base = base.rstrip("/")
    return base if signal == "success" else f"{base}/{signal}"


def reason_text(text: str) -> str:
    """The failure body: one short paragraph, URL queries cut off."""
    return QUERY.sub(r"\1", text)[:REASON_LIMIT]


def ping(
    config: HeartbeatConfig, kind: Kind, signal: Signal, work_dir: Path, reason: str | None = None
) -> bool:
    """Send one ping if the check is set; True when the monitor answered 2xx. Never raises."""
    base = getattr(config, kind)
    if base is None:
        return False
    url = ping_url(base, signal)
    host = urlsplit(base).hostname  # the URL's path is the check's key: kept out of the logs
    error = None
    try:
        response = httpx.post(url, content=reason_text(reason or "").encode(), timeout=config.timeout_s)
        response.raise_for_status()
    except Exception as exc:  # a monitor that is down must never fail the run
        error = f"{type(exc).__name__}: {reason_text(str(exc)).replace(base, host or '?')}"
        logger.warning("heartbeat %s ping (%s) to %s failed: %s", signal, kind, host, error)
    _record(work_dir, kind, signal, error)
    return error is None


def last_pings(work_dir: Path, kind: Kind) -> dict[str, Any]:
    """What `_record` kept for this kind: the last ping of each signal and the last error."""
    path = work_dir / STATE_DIR / f"{kind}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def heartbeat_status(config: HeartbeatConfig, work_dir: Path) -> dict[str, Any]:
    """Per kind: whether a URL is set (never the URL: its path is the check's key) and when a
    success ping last reached the monitor."""
    found = {}
    for kind in KINDS:
        url = getattr(config, kind)
        seen = last_pings(work_dir, kind)
        found[kind] = {
            "set": url is not None,
            "host": urlsplit(url).hostname if url else None,
            "last_success": seen.get("success"),
            "last_error": seen.get("error"),
        }
    return found


def record_urls(alerts_file: Path, urls: dict[Kind, str]) -> list[Kind]:
    """Write `heartbeat.<kind>: <url>` into alerts.yaml, keeping its comments; returns the kinds
    whose URL changed. A URL not in the healthchecks.io form fails before anything is written."""
    text = alerts_file.read_text(encoding="utf-8")
    start = text.find("\nheartbeat:")
    if start < 0:
        raise ValueError(
            f"{alerts_file}: no `heartbeat:` section; add `heartbeat: {{round: URL, weekly: URL}}`"
        )
    for kind, url in urls.items():
        if not re.match(HEARTBEAT_URL_PATTERN, url):
            raise ValueError(
                f"--heartbeat-{kind}: {url!r} is not a ping URL: give the check's http(s) URL without "
                "? or # (e.g. https://hc-ping.com/<uuid>); /start and /fail are appended to it"
            )
    changed: list[Kind] = []
    for kind, url in urls.items():
        line = re.compile(rf"^(  {kind}:[ \t]*)(\S+)([ \t]*)", re.MULTILINE)
        match = line.search(text, start)
        if match is None:
            raise ValueError(f"{alerts_file}: no `  {kind}:` line under heartbeat:; set it by hand")
        if match[2] == url:
            continue
        width = len(match[0])  # keep the comment's column where the value fits
        text = text[: match.start()] + f"{match[1]}{url}".ljust(width - 1) + " " + text[match.end() :]
        changed.append(kind)
    if changed:
        write_text_atomic(alerts_file, text)
    return changed


def _record(work_dir: Path, kind: Kind, signal: Signal, error: str | None) -> None:
    try:
        seen = last_pings(work_dir, kind)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        if error is None:
            seen[signal] = now
            seen.pop("error", None)  # the monitor answers again
        else:
            seen["error"] = f"{now} {signal}: {error}"
        write_json_atomic(work_dir / STATE_DIR / f"{kind}.json", seen)
    except Exception as exc:  # a full disk must not fail the run from here either
        logger.warning("could not record the heartbeat ping: %s", exc)
