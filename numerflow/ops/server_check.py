"""Set-up commands write to the Prefect server that runs the flows, never to a temporary one.

Without PREFECT_API_URL (env or profile), Prefect's default `ephemeral` profile starts a
temporary server on the same `prefect.db`, but without the service's
PREFECT_SERVER_ENCRYPTION_KEY: a block saved through it is encrypted under another key, and the
real server can no longer read it, so every scheduled run fails.
"""

from __future__ import annotations

import os

from prefect.settings import get_current_settings

DEFAULT_API_URL = "http://127.0.0.1:4200/api"


class TemporaryServerError(RuntimeError):
    """PREFECT_API_URL is not set: Prefect would write to a temporary server."""


def set_api_url_hint(url: str = DEFAULT_API_URL) -> str:
    """How to point this shell at the server, in the shell of the platform."""
    if os.name == "nt":
        return (
            f'$env:PREFECT_API_URL = "{url}" (numerflow-services.ps1 -Install sets it for your account; '
            "terminals opened after it have it)"
        )
    return f"export PREFECT_API_URL={url}"


def require_server(command: str) -> str:
    """The API URL `command` will write to; raises TemporaryServerError when there is none."""
    url = get_current_settings().api.url
    if not url:
        raise TemporaryServerError(
            f"{command}: PREFECT_API_URL is not set, so Prefect would write to a temporary server "
            "that the service's server cannot read from (another encryption key). Start the server "
            f"(docs/operations.md), then: {set_api_url_hint()}"
        )
    return url
