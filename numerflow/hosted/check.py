"""The check before any upload: the pickle run in Numerai's runtime, as Numerai runs it, within
Numerai's limits, and its predictions compared with numerflow's own for the same live file."""

from __future__ import annotations

import json
import sys
import tempfile
from importlib.resources import as_file, files
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel

from numerflow.hosted.limits import GIB, Finished, Limits, run_limited

AGREEMENT = 1e-6  # largest |difference| allowed between the pickle's and numerflow's predictions


class PickleRefused(ValueError):
    """The pickle would fail on Numerai: it is not uploaded. `cause`: time, memory, runner (load,
    call or result, as Numerai's runner checks them) or agreement."""

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


class CheckResult(BaseModel):
    seconds: float  # the whole run in the runtime: start, load, read live, predict
    load_seconds: float
    predict_seconds: float
    peak_memory_bytes: int | None
    max_abs_diff: float
    rows: int
    limits: str


def check_pickle(
    pickle_path: Path,
    runtime_python: Path,
    live_file: Path,
    expected: pd.Series,
    benchmarks_file: Path | None = None,
    limits: Limits | None = None,
    posix: bool | None = None,
) -> CheckResult:
    """Run the pickle in the runtime on `live_file`; raise `PickleRefused` naming what to change.

    `expected` is numerflow's own prediction for the same file, indexed by id.
    """
    limits = limits or Limits()
    with (
        tempfile.TemporaryDirectory(prefix="numerflow-check-") as scratch,
        as_file(files("numerflow.hosted").joinpath("runner.py")) as runner,
    ):
        out, report_path = Path(scratch) / "predictions.parquet", Path(scratch) / "report.json"
        command = [
            str(runtime_python), "-I", str(runner), "--model", str(pickle_path.resolve()),
            "--dataset", str(live_file.resolve()), "--output", str(out), "--report", str(report_path),
        ]  # fmt: skip
        if benchmarks_file is not None and benchmarks_file.is_file():
            command += ["--benchmarks", str(benchmarks_file.resolve())]
        finished = run_limited(command, limits, Path(scratch), posix)
        report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else None
        where = f"{pickle_path.name} in Numerai's Python {_python(report)} runtime ({limits.describe()})"
        if finished.timed_out:
            raise PickleRefused(
                f"{where}: over the time limit: no answer within {limits.timeout_s:g} s; Numerai stops a "
                "run at 10 minutes: use fewer trees or features for this slot",
                "time",
            )
        if (
            finished.memory_killed
            or (report and report.get("stage") == "memory")
            or _out_of_memory(finished, report)
        ):
            raise PickleRefused(
                f"{where}: over the memory limit of {limits.memory_bytes / GIB:.3g} GiB; Numerai's machine "
                "has 4 GB: use fewer trees or features for this slot",
                "memory",
            )
        if report is None or not report.get("ok"):
            reason = report["reason"] if report else f"exit {finished.returncode}: {finished.stderr[-600:]}"
            raise PickleRefused(f"{where}: {reason}{_advice(reason)}", "runner")
        produced = pd.read_parquet(out).iloc[:, 0]
    peak = finished.peak_memory_bytes or report.get("peak_memory_bytes")
    diff = _agreement(produced, expected, where)
    return CheckResult(
        seconds=finished.seconds,
        load_seconds=report["load_seconds"],
        predict_seconds=report["predict_seconds"],
        peak_memory_bytes=peak,
        max_abs_diff=diff,
        rows=len(produced),
        limits=limits.describe(),
    )


def _agreement(produced: pd.Series, expected: pd.Series, where: str) -> float:
    produced = produced.set_axis(produced.index.astype(str))
    expected = expected.set_axis(expected.index.astype(str))
    missing = expected.index.difference(produced.index)
    if len(missing) or len(produced) != len(expected):
        raise PickleRefused(
            f"{where}: predicted {len(produced)} rows for {len(expected)} live ids "
            f"({len(missing)} ids missing, e.g. {list(missing[:3])})",
            "agreement",
        )
    diff = float(np.max(np.abs(produced.loc[expected.index].to_numpy() - expected.to_numpy())))
    if not diff < AGREEMENT:
        raise PickleRefused(
            f"{where}: its predictions differ from numerflow's own by up to {diff:.3g} "
            f"(allowed {AGREEMENT:g}): the pickle does not compute what `numerflow submit` would submit",
            "agreement",
        )
    return diff


def _out_of_memory(finished: Finished, report: dict | None) -> bool:
    """A failed allocation, in the child's stderr or in the error the runner caught (LightGBM
    reports its C++ `std::bad_alloc` as a LightGBMError; Arrow as ArrowMemoryError)."""
    text = finished.stderr + ((report or {}).get("reason") or "")
    return any(sign in text for sign in ("MemoryError", "bad_alloc", "Cannot allocate memory"))


def _python(report: dict | None) -> str:
    return report["python"] if report else f"{sys.version_info.major}.{sys.version_info.minor}"


def _advice(reason: str) -> str:
    if "No module named" in reason:
        return (
            ": the pickle refers to code Numerai's image does not have; build it with `numerflow pickle`, "
            "which closes over model strings and numbers only"
        )
    if "incompatible with Python" in reason:
        return ": build the pickle with the Python version of the image it is uploaded to"
    if "between 0 and 1" in reason or "NaN" in reason:
        return ": rank the predictions into (0, 1) before returning them"
    return ""
