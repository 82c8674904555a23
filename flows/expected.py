"""Expected failures end a flow run with one short message, not another traceback.

A missing block, bad config, missing data, refused credentials, an unreachable cluster or
memory that does not fit are the owner's to fix, and the message says how. Raised through the
flows, each level logged the full traceback again (three in the worker log for one missing
block). A flow wrapped here logs the message once and returns a Failed state carrying the
error; a subflow failure reaches its parent as that error again, or as FailedRun (its own
traceback, if any, is already in the subflow's log).
Anything else still raises, with its traceback.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from prefect import get_run_logger
from prefect.exceptions import FailedRun
from prefect.states import Failed

from flows.folds import ClusterUnreachable
from numerflow.config import ConfigError
from numerflow.data.files import DataError
from numerflow.data.memory import MemoryBudgetError
from numerflow.gpu.decision import GpuRequiredError
from numerflow.lgbpaths import LightGBMPathError
from numerflow.numerai.errors import NumeraiError
from numerflow.ops.keepawake import keep_awake
from numerflow.submit.file import SubmissionError

EXPECTED_ERRORS = (
    ConfigError,
    DataError,
    MemoryBudgetError,
    GpuRequiredError,
    NumeraiError,
    SubmissionError,
    LightGBMPathError,
    ClusterUnreachable,
    FailedRun,
)

F = TypeVar("F", bound=Callable[..., Any])


def fails_cleanly(function: F) -> F:
    """Decorate a flow's function (below @flow) so expected errors fail it with their message.

    While it runs, Windows' idle sleep is held off (numerflow.ops.keepawake)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with keep_awake():
                return function(*args, **kwargs)
        except EXPECTED_ERRORS as exc:
            message = str(exc) if isinstance(exc, FailedRun) else f"{type(exc).__name__}: {exc}"
            get_run_logger().error("%s", message)
            return Failed(message=message, data=exc)  # the state's result is the error itself

    # The flow's signature with its annotations resolved in the flow's own module: Prefect builds
    # the parameter model from it, resolving names in the wrapper's module otherwise.
    wrapper.__signature__ = inspect.signature(function, eval_str=True)  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
