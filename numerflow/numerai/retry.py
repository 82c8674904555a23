"""Retry transient failures with exponential backoff and full jitter, inside a time budget."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from numerflow.numerai.errors import TransientError, classify

T = TypeVar("T")
logger = logging.getLogger("numerflow.numerai")


def call_with_retries(
    action: Callable[[], T],
    what: str,
    budget_seconds: float = 120.0,
    base_delay: float = 1.0,
    max_delay: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """Run `action`; retry only transient failures until `budget_seconds` would be exceeded.

    Other failures (authentication, refusals) are raised at once as their classified error.
    """
    rng = rng or random.Random()
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            return action()
        except Exception as exc:
            kind = classify(exc)
            error = exc if isinstance(exc, kind) else kind(f"{what}: {_describe(exc)}")
            if kind is not TransientError:
                raise error from exc
            delay = rng.uniform(0, min(max_delay, base_delay * 2 ** (attempt - 1)))
            elapsed = time.monotonic() - started
            if elapsed + delay > budget_seconds:
                raise TransientError(
                    f"{what}: gave up after {attempt} attempt(s) in {elapsed:.0f} s: {_describe(exc)}"
                ) from exc
            logger.warning("%s failed (%s); retry %d in %.1f s", what, _describe(exc), attempt, delay)
            sleep(delay)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args == ("data",):
        return "Numerai API answered without data (HTTP error, timeout or connection failure)"
    return f"{type(exc).__name__}: {exc}"
