"""What can go wrong talking to Numerai, sorted by what to do about it.

- `AuthError`: the credentials are wrong; retrying cannot help, the owner must act.
- `TransientError`: 5xx, timeouts, dropped connections, truncated bodies; worth retrying.
- `NumeraiError`: anything else Numerai refused; not retried.
"""

from __future__ import annotations

import requests

AUTH_MESSAGES = (
    "Your session is invalid or has expired.",
    "API keys required for this action.",
)

AUTH_HINT = (
    "check that NUMERAI_PUBLIC_ID and NUMERAI_SECRET_KEY are not swapped, that the API key has not "
    "expired or been deleted (and has upload scope), and that the model id belongs to this account"
)


class NumeraiError(RuntimeError):
    """Numerai refused a request; retrying will not change the answer."""


class AuthError(NumeraiError):
    """Numerai rejected the credentials."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"Numerai rejected the credentials ({detail}): {AUTH_HINT}")


class TransientError(NumeraiError):
    """A failure that may pass: server error, timeout, dropped or truncated transfer."""


class NoOpenRound(NumeraiError):
    """No round is open for submissions right now."""


def classify(exc: BaseException) -> type[NumeraiError]:
    """Map an exception from numerapi, requests or our own checks onto the classes above."""
    if isinstance(exc, NumeraiError):
        return type(exc) if type(exc) in (AuthError, TransientError, NoOpenRound) else NumeraiError
    if isinstance(exc, ValueError) and any(m in str(exc) for m in AUTH_MESSAGES):
        return AuthError
    if isinstance(exc, KeyError) and exc.args == ("data",):
        return TransientError  # numerapi's answer to an HTTP error it swallowed
    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else 500
        return TransientError if status >= 500 or status == 429 else NumeraiError
    if isinstance(exc, requests.RequestException | TimeoutError | ConnectionError):
        return TransientError
    return NumeraiError
