"""Model-upload pickles inside Numerai's limits: size, load and predict time and peak memory in the
pinned runtime held to 1 CPU, 4 GiB and 10 minutes, on ~7,000 live rows; and the largest model
that still passes.

    uv run python -m benchmarks.hosted_pickle          # the demo's slot, the big slot, the largest
    uv run python -m benchmarks.hosted_pickle --no-demo --no-largest --trees 500 --features 600

1. The demo's slot: `numerflow demo` runs into `<data>/demo` (unless a trained run is there), and
   that slot's pickle is built and checked by `numerflow pickle`'s own function, on the 7,000-row
   live file below (it holds the demo's features among all of them).
2. The big slot: one final model per target, each target trained on its own labels with Numerai's
   example-model parameters, on a small Numerai-shaped set (a tree's cost to load and predict
   depends on its leaves and the features, not on the rows it was trained on), stacked by the
   mean, pickled and checked as the weekly run does.
3. The largest model that still fits: the big slot's models with their trees repeated
   (`benchmarks.repeated_trees`: a proxy for trained models with as many trees of the same
   shape; its ranked predictions are the big slot's, so the check's agreement still holds),
   checked at sizes doubling from `--grow-from` copies until the check refuses one, then once
   between the largest that passed and the smallest refused unless that run would take over half
   the time limit.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from benchmarks.common import EXAMPLE_MODEL, MIB, REPO, dataset, feature_names
from benchmarks.repeated_trees import repeat_trees
from numerflow.hosted import predictor
from numerflow.hosted.build import write_pickle
from numerflow.hosted.check import CheckResult, PickleRefused, check_pickle
from numerflow.hosted.limits import Limits
from numerflow.hosted.runtime import ensure_runtime
from numerflow.hosted.slot import (
    BENCHMARKS_FILE,
    Checked,
    build_and_check,
    pickle_slot,
    submitted_predictions,
)
from numerflow.numerai.images import image_for
from numerflow.runs.manifest import TrainedRun, latest_slot_run, load_trained_run
from numerflow.submit.file import make_submission
from numerflow.submit.live import predict_live

TARGETS = ["target", "target_cyrusd_20", "target_teager2b_20", "target_ender_60"]  # distinct labels
DEMO_SLOT = "main"  # the slot `numerflow demo` trains with the shipped config


def demo_slot(work: Path) -> TrainedRun:
    """The slot the demo trained in `work`: `numerflow demo` runs first when there is none."""
    slot_dir = latest_slot_run(work / "runs", DEMO_SLOT)
    if slot_dir is None:
        print(f"running `numerflow demo --work-dir {work}` ...", flush=True)
        started = time.perf_counter()
        home = tempfile.mkdtemp(prefix="numerflow-bench-prefect-")  # its own temporary Prefect server
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env |= {"PREFECT_HOME": home, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        command = [sys.executable, "-c", "from cli.main import app; app()", "demo", "--work-dir", str(work)]
        done = subprocess.run([*command, "--no-progress"], cwd=REPO, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"numerflow demo failed ({done.returncode}):\n{done.stderr[-3000:]}")
        print(f"demo trained in {time.perf_counter() - started:.0f} s", flush=True)
        slot_dir = latest_slot_run(work / "runs", DEMO_SLOT)
    assert slot_dir is not None, f"the demo trained no slot {DEMO_SLOT} in {work}"
    return load_trained_run(slot_dir)


def train_slot(version_dir: Path, out: Path, features: list[str], targets: int, trees: int) -> TrainedRun:
    """The big slot's final models, each target's trees trained on its own labels."""
    columns = TARGETS[:targets]
    train = pd.read_parquet(version_dir / "train.parquet", columns=[*features, *columns])
    params = {k: v for k, v in EXAMPLE_MODEL.items() if k != "n_estimators"}
    params |= {"objective": "regression", "verbosity": -1, "seed": 0, "force_col_wise": True}
    models = {}
    for target in columns:
        started = time.perf_counter()
        known = train[target].notna().to_numpy()
        data = lgb.Dataset(train.loc[known, features].to_numpy(np.int8), train.loc[known, target])
        booster = lgb.train(params, data, num_boost_round=trees)
        booster.save_model(out / f"{target}.txt")
        models[target] = [out / f"{target}.txt"]
        leaves, seconds = mean_leaves(booster.model_to_string()), time.perf_counter() - started
        print(
            f"trained {target}: {trees:,} trees on {int(known.sum()):,} rows x {len(features):,} features, "
            f"{leaves:.1f} leaves a tree, in {seconds:.0f} s",
            flush=True,
        )
    stacker = {"kind": "mean", "columns": columns, "weights": [1 / len(columns)] * len(columns)}
    return TrainedRun(run_id="benchmark", slot="big", slot_dir=out, data_version=version_dir.name,
                      feature_names=features, models=models, stacker=stacker)  # fmt: skip


def mean_leaves(model: str) -> float:
    return float(np.mean([int(n) for n in re.findall(r"^num_leaves=(\d+)$", model, re.MULTILINE)]))


def trees_of(run: TrainedRun) -> int:
    return sum(
        lgb.Booster(model_file=str(p)).num_trees()
        for paths in run.submission_models().values()
        for p in paths
    )


def describe(check: CheckResult, pickle_bytes: int) -> str:
    peak = f"{check.peak_memory_bytes / MIB:,.0f} MiB" if check.peak_memory_bytes else "not measured"
    return (
        f"pickle {pickle_bytes / MIB:,.1f} MiB; check {check.seconds:.1f} s "
        f"(load {check.load_seconds:.1f} s, predict {check.predict_seconds:.1f} s on {check.rows:,} live "
        f"rows), peak memory {peak} within "
        f"{check.limits}; max |diff| vs numerflow {check.max_abs_diff:.2g}"
    )


def report(name: str, checked: Checked) -> None:
    print(f"{name}: {describe(checked.check, checked.record.bytes)}", flush=True)


class Grown:
    """The big slot's models with their trees repeated, pickled and checked like the real one."""

    def __init__(self, run: TrainedRun, live_file: Path, own: Path, out: Path, limits: Limits) -> None:
        self.run, self.live_file, self.out, self.limits = run, live_file, out, limits
        self.strings = {
            t: paths[0].read_text(encoding="utf-8") for t, paths in run.submission_models().items()
        }
        self.trees = sum(lgb.Booster(model_str=s).num_trees() for s in self.strings.values())
        # repeated trees scale each target's raw scores, so the ranks `numerflow submit` gave stand
        self.expected = submitted_predictions(own)
        self.runtime = ensure_runtime(image_for())

    def check(self, copies: int) -> CheckResult | PickleRefused:
        started = time.perf_counter()
        grown = {t: [repeat_trees(s, copies)] for t, s in self.strings.items()}
        stacker = self.run.stacker
        function = predictor.make_predict(
            grown, self.run.feature_names, stacker["columns"], stacker["weights"]
        )
        path = self.out / f"grown-{copies}.pkl"
        write_pickle(function, path)
        del grown, function
        size = path.stat().st_size
        name = f"{self.trees * copies:,} trees ({copies} x the big slot)"
        try:
            result = check_pickle(path, self.runtime, self.live_file, self.expected,
                                  self.live_file.parent / BENCHMARKS_FILE, self.limits)  # fmt: skip
            print(f"{name}: passed: {describe(result, size)}", flush=True)
            return result
        except PickleRefused as exc:
            print(f"{name}: refused ({exc.cause}) after {time.perf_counter() - started:.0f} s "
                  f"(pickle {size / MIB:,.0f} MiB): {exc}", flush=True)  # fmt: skip
            return exc
        finally:
            path.unlink()


def largest_that_fits(grown: Grown, start: int) -> None:
    """Doubling from `start` copies until one is refused, then one run between when it is short."""
    outcomes: dict[int, CheckResult | PickleRefused] = {}
    copies = start
    while not isinstance(outcomes.setdefault(copies, grown.check(copies)), PickleRefused):
        copies *= 2
    passed = [c for c, o in outcomes.items() if isinstance(o, CheckResult)]
    if passed:
        low, high = max(passed), copies
        middle, result = (low + high) // 2, outcomes[max(passed)]
        assert isinstance(result, CheckResult)
        expect = result.seconds * middle / low
        if low < middle < high and expect < grown.limits.timeout_s / 2:
            outcomes[middle] = grown.check(middle)
        else:
            print(
                f"no run between: {middle * grown.trees:,} trees would take about {expect:.0f} s by the "
                "largest pass (over half the limit), so the answer is a bracket",
                flush=True,
            )
    fits = [c for c, o in outcomes.items() if isinstance(o, CheckResult)]
    refused = {c: o for c, o in outcomes.items() if isinstance(o, PickleRefused)}
    smallest = min(refused)
    fit = (
        f"{max(fits) * grown.trees:,} trees passed"
        if fits
        else f"nothing from {start * grown.trees:,} trees up passed"
    )
    print(
        f"largest that fits (repeated trees of the big slot's shape, a proxy): {fit}; "
        f"{smallest * grown.trees:,} trees were refused ({refused[smallest].cause})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--features", type=int, default=2376)
    parser.add_argument("--targets", type=int, default=2, choices=range(1, len(TARGETS) + 1))
    parser.add_argument("--trees", type=int, default=2000, help="trees a target in the big slot")
    parser.add_argument("--train-rows", type=int, default=5000)
    parser.add_argument("--live-rows", type=int, default=7000)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "numerflow-bench")
    parser.add_argument("--no-demo", dest="demo", action="store_false", help="skip the demo's slot")
    parser.add_argument("--no-largest", dest="largest", action="store_false", help="skip the largest model")
    parser.add_argument(
        "--grow-from", type=int, default=16, help="copies of the big slot's trees to start at"
    )
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds (Numerai's: 600)")
    args = parser.parse_args()
    limits = Limits(timeout_s=args.time_limit)  # Numerai's: 1 CPU, 4 GiB, 10 minutes
    began = time.perf_counter()
    version_dir = dataset(args.data, args.train_rows, args.features, args.live_rows)
    live_file = version_dir / "live.parquet"
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        if args.demo:
            demo = demo_slot(args.data / "demo")
            (out / "demo").mkdir()
            checked = pickle_slot(demo, version_dir.parent, out / "demo", limits)
            report(f"the demo's slot (run {demo.run_id}): {trees_of(demo):,} trees on "
                   f"{len(demo.feature_names)} features", checked)  # fmt: skip
        run = train_slot(
            version_dir, out, feature_names(version_dir, args.features), args.targets, args.trees
        )
        own = make_submission(predict_live(run, live_file, out / "live.parquet"), out / "own.csv").path
        checked = build_and_check(run, live_file, own, out, limits)
        shape = f"{args.targets} x {args.trees:,} trees on {args.features:,} features (final models)"
        report(f"big slot: {shape}", checked)
        if args.largest:
            largest_that_fits(Grown(run, live_file, own, out, limits), args.grow_from)
    print(f"benchmark wall time {time.perf_counter() - began:.0f} s", flush=True)


if __name__ == "__main__":
    main()
