"""Run a model-upload pickle as Numerai's runner does, inside the pinned runtime (not numerflow's).

Run as a script by `numerflow.hosted.check` with the runtime's Python; it imports nothing from
numerflow (which is not installed there). Written for numerflow after the behaviour of Numerai's
runner (numerai/numerai-predict `predict.py`): the pickle is loaded with `pd.read_pickle`, called
with one or two arguments by the length of its signature (the whole live file, and the whole
benchmark-models file), and its answer must be a non-empty `pd.DataFrame` without NaN whose
first column lies in [0, 1]. The outcome goes to a JSON file; predictions to a parquet file.
"""

from __future__ import annotations

import argparse
import inspect
import json
import pickle
import sys
import time
import traceback

import pandas as pd


class Refused(Exception):
    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage, self.reason = stage, reason


def peak_memory_bytes() -> int | None:
    try:
        import resource
    except ImportError:  # Windows: the parent's watchdog measures it
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def load(path: str) -> object:
    try:
        return pd.read_pickle(path)
    except pickle.UnpicklingError as exc:
        raise Refused("load", f"Invalid pickle: {exc}") from None
    except TypeError as exc:
        raise Refused("load", f"Pickle incompatible with Python {sys.version.split()[0]}: {exc}") from None
    except ModuleNotFoundError as exc:
        raise Refused("load", f"Import error reading pickle - {exc}") from None


def call(model: object, live: pd.DataFrame, benchmarks_path: str | None) -> object:
    arguments = len(inspect.signature(model).parameters)
    if arguments == 1:
        return model(live)
    if arguments == 2:
        benchmarks = pd.read_parquet(benchmarks_path) if benchmarks_path else pd.DataFrame(index=live.index)
        return model(live, benchmarks)
    raise Refused(
        "signature", f"Invalid pickle function - {model} must have 1 or 2 arguments, has {arguments}"
    )


def check_result(result: object) -> pd.DataFrame:
    if result is None:
        raise Refused("result", "Pickle function returned None")
    if type(result) is not pd.DataFrame:
        raise Refused("result", f"Pickle function returned {type(result).__name__}, not a pandas DataFrame")
    if len(result) == 0:
        raise Refused("result", "Pickle function returned an empty DataFrame")
    if result.isna().any().any():
        raise Refused("result", "Pickle function returned NaN values")
    first = result.iloc[:, 0]
    if first.min() < 0 or first.max() > 1:
        raise Refused(
            "result",
            f"Pickle function returned values outside [0, 1] ({first.min():.4g} to {first.max():.4g}): "
            "ensure values are between 0 and 1 (rank them)",
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("--model", "--dataset", "--output", "--report"):
        parser.add_argument(name, required=True)
    parser.add_argument("--benchmarks")
    args = parser.parse_args()
    report: dict[str, object] = {"ok": False, "python": sys.version.split()[0]}
    started = time.perf_counter()
    try:
        model = load(args.model)
        report["load_seconds"] = time.perf_counter() - started
        live = pd.read_parquet(args.dataset)
        called = time.perf_counter()
        result = check_result(call(model, live, args.benchmarks))
        report["predict_seconds"] = time.perf_counter() - called
        result.iloc[:, :1].to_parquet(args.output)
        report["ok"] = True
    except Refused as exc:
        report |= {"stage": exc.stage, "reason": exc.reason}
    except MemoryError:
        report |= {"stage": "memory", "reason": "ran out of memory (MemoryError)"}
    except Exception as exc:
        report |= {
            "stage": "call",
            "reason": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc()[-2000:],
        }
    report["peak_memory_bytes"] = peak_memory_bytes()
    with open(args.report, "w", encoding="utf-8") as handle:
        json.dump(report, handle)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
