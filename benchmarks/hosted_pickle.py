"""The model-upload pickle of a slot inside Numerai's limits: its size, load and predict time and
peak memory in the pinned runtime held to 1 CPU and 4 GiB, on ~7,000 live rows.

    uv run python -m benchmarks.hosted_pickle                      # 2 targets x 2,000 trees, 2,376 features
    uv run python -m benchmarks.hosted_pickle --trees 500 --features 600
    uv run python -m benchmarks.hosted_pickle --slot-dir numerflow-demo/runs/<run>/slots/main

A big slot's final models (one per target, Numerai's example-model parameters) are trained on a
small Numerai-shaped set (a tree's size depends on its leaves, not on the rows), stacked by the
mean, and pickled and checked exactly as `numerflow pickle` does; `--slot-dir` does the same for
an existing trained slot (e.g. the demo's). From the measured seconds and peak memory it prints
how many trees of this shape would still fit Numerai's 10 minutes and 4 GB, marked as an
extrapolation (predict time and model memory grow with the tree count).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from benchmarks.common import EXAMPLE_MODEL, MIB, dataset, feature_names
from numerflow.hosted.check import CheckResult
from numerflow.hosted.limits import GIB, Limits
from numerflow.hosted.slot import Checked, build_and_check, pickle_slot
from numerflow.runs.manifest import TrainedRun, load_trained_run
from numerflow.submit.file import make_submission
from numerflow.submit.live import predict_live

NUMERAI_SECONDS, NUMERAI_MEMORY = 600.0, 4 * GIB
TARGETS = ["target", "target_ender_20", "target_jasper_20", "target_victor_20"]


def train_slot(
    version_dir: Path, out: Path, features: list[str], targets: int, trees: int, model_file: Path | None
) -> TrainedRun:
    """The big slot's final models; `<target>_1tree.txt` beside each keeps only its first tree.
    With `model_file` every target uses that model instead of training one."""
    columns = TARGETS[:targets]
    train = (
        None if model_file else pd.read_parquet(version_dir / "train.parquet", columns=[*features, *columns])
    )
    params = {k: v for k, v in EXAMPLE_MODEL.items() if k != "n_estimators"}
    params |= {"objective": "regression", "verbosity": -1, "seed": 0, "force_col_wise": True}
    models = {}
    for target in columns:
        started = time.perf_counter()
        if train is None:
            booster = lgb.Booster(model_file=str(model_file))
            print(f"{target}: the {booster.num_trees():,} trees of {model_file}, not trained", flush=True)
        else:
            known = train[target].notna().to_numpy()
            data = lgb.Dataset(train.loc[known, features].to_numpy(np.int8), train.loc[known, target])
            booster = lgb.train(params, data, num_boost_round=trees)
            print(f"trained {target}: {trees:,} trees in {time.perf_counter() - started:.0f} s", flush=True)
        booster.save_model(out / f"{target}.txt")
        booster.save_model(out / f"{target}_1tree.txt", num_iteration=1)
        models[target] = [out / f"{target}.txt"]
    stacker = {"kind": "mean", "columns": columns, "weights": [1 / len(columns)] * len(columns)}
    return TrainedRun(run_id="benchmark", slot="big", slot_dir=out, data_version=version_dir.name,
                      feature_names=features, models=models, stacker=stacker)  # fmt: skip


def one_tree(run: TrainedRun) -> TrainedRun:
    models = {t: [p.with_name(f"{t}_1tree.txt")] for t, p in ((t, ps[0]) for t, ps in run.models.items())}
    return run.model_copy(update={"models": models})


def report(name: str, checked: Checked) -> None:
    record, check = checked.record, checked.check
    peak = check.peak_memory_bytes or 0
    print(
        f"{name}: pickle {record.bytes / MIB:,.1f} MiB ({record.models} models), "
        f"check {check.seconds:.1f} s (load {check.load_seconds:.1f} s, "
        f"predict {check.predict_seconds:.1f} s on {check.rows:,} live rows), "
        f"peak memory {peak / MIB:,.0f} MiB within {check.limits}, max |diff| vs numerflow "
        f"{check.max_abs_diff:.2g}",
        flush=True,
    )


def extrapolate(small: CheckResult, big: CheckResult, trees: int) -> str:
    """Trees of this shape that fit Numerai's limits, linear through the 1-tree and the full check
    (an extrapolation, not a measurement)."""
    seconds = (big.load_seconds + big.predict_seconds) - (small.load_seconds + small.predict_seconds)
    memory = (big.peak_memory_bytes or 0) - (small.peak_memory_bytes or 0)
    if seconds > 0:
        fit = f"about {(NUMERAI_SECONDS - small.seconds) / (seconds / trees):,.0f} trees in 10 minutes"
        time_part = f"{seconds / trees * 1000:.2f} ms a tree to load and predict, {fit}"
    else:
        time_part = "no measurable time a tree"
    if memory > 0:
        room = NUMERAI_MEMORY - (small.peak_memory_bytes or 0)
        fit = f"about {room / (memory / trees):,.0f} trees in 4 GB"
        memory_part = f"{memory / trees / 1024:,.1f} KiB a tree, {fit}"
    else:
        memory_part = "no measurable memory a tree (the peak is the live data and the libraries)"
    return f"extrapolated linearly from the two checks, not measured: {time_part}; {memory_part}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--features", type=int, default=2376)
    parser.add_argument("--targets", type=int, default=2, choices=range(1, len(TARGETS) + 1))
    parser.add_argument("--trees", type=int, default=2000)
    parser.add_argument("--train-rows", type=int, default=25_000)
    parser.add_argument("--live-rows", type=int, default=7000)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "numerflow-bench")
    parser.add_argument(
        "--model-file",
        type=Path,
        help="use this LightGBM model (its trees, on these features) for every target instead of training",
    )
    parser.add_argument("--slot-dir", type=Path, help="also an existing trained slot, e.g. the demo's")
    parser.add_argument(
        "--slot-data", type=Path, help="its data folder [default: the demo's, <work>/data beside <work>/runs]"
    )
    args = parser.parse_args()
    limits = Limits()  # Numerai's: 1 CPU, 4 GiB, 10 minutes
    if args.slot_dir:
        run = load_trained_run(args.slot_dir)
        with tempfile.TemporaryDirectory() as out:
            data_dir = args.slot_data or args.slot_dir.parents[3] / "data"
            checked = pickle_slot(run, data_dir, Path(out), limits)
            trees = sum(lgb.Booster(model_file=str(p)).num_trees()
                        for paths in run.submission_models().values() for p in paths)  # fmt: skip
            report(f"slot {run.slot}: {trees:,} trees on {len(run.feature_names)} features", checked)
    version_dir = dataset(args.data, args.train_rows, args.features, args.live_rows)
    features = feature_names(version_dir, args.features)
    with tempfile.TemporaryDirectory() as out:
        run = train_slot(version_dir, Path(out), features, args.targets, args.trees, args.model_file)
        shape = f"{args.targets} targets on {args.features:,} features (final models)"
        checks = {}
        for trees, slot in ((1, one_tree(run)), (args.trees, run)):
            slot_live = predict_live(slot, version_dir / "live.parquet", Path(out) / "live.parquet")
            own = make_submission(slot_live, Path(out) / "own.csv")
            checked = build_and_check(slot, version_dir / "live.parquet", own.path, Path(out), limits)
            report(f"{trees:,} trees x {shape}", checked)
            checks[trees] = checked.check
        print(extrapolate(checks[1], checks[args.trees], args.targets * (args.trees - 1)), flush=True)


if __name__ == "__main__":
    main()
