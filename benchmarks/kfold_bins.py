"""A K-fold run bins its data once: construction count and time, then every fold reuses the bins.

    uv run python -m benchmarks.kfold_bins --size 500000x1000 --folds 4 --trees 50

Runs numerflow's training steps (prepare the rows, then one `fit_fold` per fold x target)
twice on the same data and bins cache, each run in its own process as a weekly run would be:
the first builds the bins once, the second finds them in the cache and builds nothing. Each
model's time includes loading the saved bins and taking its subset.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numerflow.train.fit as fit
import numerflow.train.prepare as prepare
from benchmarks.common import EXAMPLE_MODEL, dataset, feature_names, peak_rss_mib, reset_peak_rss, run_child
from numerflow.config.models import LightGBMParams
from numerflow.train.folds import make_folds

TARGETS = ["target", "target_cyrusd_20", "target_teager2b_20", "target_ender_60", "target_cyrusd_60"]


def one_run(
    version_dir: Path, n_features: int, n_targets: int, folds: int, trees: int, work: Path, run: int
) -> dict:
    features = feature_names(version_dir, n_features)
    params = LightGBMParams(**{**EXAMPLE_MODEL, "n_estimators": trees})
    targets = TARGETS[:n_targets]
    builds: list[float] = []
    real_build = prepare.build_dataset

    def counted_build(*build_args, **build_kwargs):
        started = time.perf_counter()
        built = real_build(*build_args, **build_kwargs)
        builds.append(time.perf_counter() - started)
        return built

    prepare.build_dataset = counted_build  # count every time raw rows are binned
    started = time.perf_counter()
    prepared = prepare.bin_training_rows(
        version_dir / "train.parquet",
        features,
        targets,
        params,
        work / f"run{run}",
        work / "bins",
        train_fraction=(folds - 1) / folds,  # as the weekly flow tells the memory guard
    )
    prepare_s = time.perf_counter() - started
    prepare_peak = peak_rss_mib()
    reset_peak_rss()
    fold_seconds = []
    for target in targets:
        for fold in make_folds(prepared.eras, folds, embargo=4):
            fold_started = time.perf_counter()
            fit.fit_fold(prepared, fold, target, params, 0, work / f"run{run}" / "models")
            fold_seconds.append(time.perf_counter() - fold_started)
    return {
        "rows": prepared.rows,
        "models": len(fold_seconds),
        "constructions": len(builds),
        "construct_s": sum(builds),
        "prepare_s": prepare_s,
        "loader": prepared.bins.record.loader,
        "fold_s": [min(fold_seconds), max(fold_seconds)],
        "prepare_peak_mib": prepare_peak,
        "folds_peak_mib": peak_rss_mib(),
        "estimated_fold_mib": prepared.bins.plan.estimates_bytes["train_fold"] / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="500000x1000", help="ROWSxFEATURES")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--targets", type=int, default=2, choices=range(1, len(TARGETS) + 1))
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "numerflow-bench-data")
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    rows, n_features = (int(v) for v in args.size.lower().split("x"))
    version_dir = dataset(args.data_dir, rows, n_features)
    if args.run:
        result = one_run(version_dir, n_features, args.targets, args.folds, args.trees, args.work, args.run)
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(prefix="numerflow-kfold-") as scratch:
        work = Path(scratch)
        for run in (1, 2):
            passed = ["--size", args.size, "--folds", str(args.folds), "--trees", str(args.trees)]
            passed += ["--targets", str(args.targets), "--data-dir", str(args.data_dir)]
            r = run_child("benchmarks.kfold_bins", [*passed, "--work", str(work), "--run", str(run)])
            made = r["constructions"]
            print(
                f"run {run}: {args.folds} folds x {args.targets} targets = {r['models']} models on "
                f"{r['rows']:,} x {n_features:,}; bins constructed {made} time(s)"
                + (f" in {r['construct_s']:.1f} s" if made else " (reused from the cache)")
                + f"; prepare {r['prepare_s']:.1f} s ({r['loader']} loader); per model "
                f"{r['fold_s'][0]:.1f}-{r['fold_s'][1]:.1f} s incl. loading the bins; peak RSS preparing "
                f"{r['prepare_peak_mib']:.0f} MiB, training the folds {r['folds_peak_mib']:.0f} MiB "
                f"(guard estimated {r['estimated_fold_mib']:.0f})"
            )


if __name__ == "__main__":
    main()
