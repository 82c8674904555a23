"""Notification blocks for alerts, by Prefect block type slug, from one webhook URL."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from prefect.blocks.core import Block
from prefect.blocks.notifications import (
    CustomWebhookNotificationBlock,
    DiscordWebhook,
    MicrosoftTeamsWebhook,
    SlackWebhook,
)
from prefect.exceptions import ObjectNotFound

DISCORD_URL = re.compile(r"/api/webhooks/(?P<id>[^/]+)/(?P<token>[^/?]+)")
DEFAULT_BLOCK_NAME = "numerflow-alerts"
# Block types recognised from a webhook's host; any other URL gets a JSON custom webhook.
HOST_BLOCK_TYPES = {
    "hooks.slack.com": "slack-webhook",
    "webhook.office.com": "ms-teams-webhook",
    "discord.com": "discord-webhook",
    "discordapp.com": "discord-webhook",
}
UNSET_BLOCK_LINE = re.compile(r"^block:[ \t]*null(?=\s)[ \t]*", re.MULTILINE)


def block_for_url(url: str) -> str:
    """`<block type>/numerflow-alerts` for a webhook URL, e.g. slack-webhook/numerflow-alerts."""
    host = (urlsplit(url).hostname or "").lower()
    slug = next(
        (slug for suffix, slug in HOST_BLOCK_TYPES.items() if host == suffix or host.endswith("." + suffix)),
        "custom-webhook",
    )
    return f"{slug}/{DEFAULT_BLOCK_NAME}"


def record_block(alerts_file: Path, spec: str) -> None:
    """Write `block: <spec>` over alerts.yaml's `block: null`, keeping the file's comments."""
    text = alerts_file.read_text()

    def filled(match: re.Match[str]) -> str:  # keep the comment's column where the value fits
        return f"block: {spec}".ljust(len(match[0]) - 1) + " "

    updated, count = UNSET_BLOCK_LINE.subn(filled, text, count=1)
    if count != 1:
        raise ValueError(f"{alerts_file}: no `block: null` line to fill in; set `block: {spec}` by hand")
    alerts_file.write_text(updated)


def build_block(slug: str, url: str) -> Block:
    if slug == "slack-webhook":
        return SlackWebhook(url=url)
    if slug == "ms-teams-webhook":
        return MicrosoftTeamsWebhook(url=url)
    if slug == "discord-webhook":
        match = DISCORD_URL.search(url)
        if not match:
            raise ValueError(
                "--url: a Discord webhook URL looks like https://discord.com/api/webhooks/<id>/<token>"
            )
        return DiscordWebhook(webhook_id=match["id"], webhook_token=match["token"])
    if slug == "custom-webhook":
        return CustomWebhookNotificationBlock(
            name="numerflow",
            url=url,
            json_data={"subject": "{{subject}}", "text": "{{body}}"},
            allow_private_urls=True,  # the owner's own endpoint may live on the LAN
        )
    raise ValueError(
        f"alerts.yaml: block: numerflow creates slack-webhook, ms-teams-webhook, discord-webhook and "
        f"custom-webhook blocks from a URL; create a {slug!r} block in the Prefect UI instead"
    )


def ensure_block(spec: str, url: str | None) -> tuple[UUID, bool]:
    """The block's document id, saving it from `url` when given; (id, saved?)."""
    slug, name = spec.split("/", 1)
    if url:
        block = build_block(slug, url)
        block.save(name, overwrite=True)
        return _document_id(block), True
    try:
        return _document_id(Block.load(spec)), False
    except (ObjectNotFound, ValueError):
        raise ValueError(f"notification block {spec} does not exist yet: pass --url to create it") from None


def _document_id(block: Any) -> UUID:
    document_id = block._block_document_id
    assert document_id is not None
    return document_id
