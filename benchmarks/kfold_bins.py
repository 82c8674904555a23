"""A K-fold run bins its data once: construction count and time, then every fold reuses the bins.

    uv run python -m benchmarks.kfold_bins --size 500000x1000 --folds 4 --trees 50

Runs numerflow's training steps (prepare the rows, then one `train_fold` per fold x target) twice
on the same data and cache: the first run builds the bins once, the second finds them in the
cache and builds nothing. Each fold's time includes loading the saved bins and taking its subset.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numerflow.training as training
from benchmarks.common import EXAMPLE_MODEL, dataset, feature_names, peak_rss_mib, reset_peak_rss
from numerflow.config.models import LightGBMParams
from numerflow.folds import make_folds

TARGETS = ["target", "target_cyrusd_20", "target_teager2b_20", "target_ender_60", "target_cyrusd_60"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="500000x1000", help="ROWSxFEATURES")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--targets", type=int, default=2, choices=range(1, len(TARGETS) + 1))
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "numerflow-bench-data")
    args = parser.parse_args()

    rows, n_features = (int(v) for v in args.size.lower().split("x"))
    version_dir = dataset(args.data_dir, rows, n_features)
    features = feature_names(version_dir, n_features)
    params = LightGBMParams(**{**EXAMPLE_MODEL, "n_estimators": args.trees})
    targets = TARGETS[: args.targets]

    builds: list[float] = []
    real_build = training.build_dataset

    def counted_build(*build_args, **build_kwargs):
        started = time.perf_counter()
        dataset_ = real_build(*build_args, **build_kwargs)
        builds.append(time.perf_counter() - started)
        return dataset_

    training.build_dataset = counted_build  # count every time raw rows are binned
    work = Path(tempfile.mkdtemp(prefix="numerflow-kfold-"))
    try:
        for run in (1, 2):
            before = len(builds)
            started = time.perf_counter()
            prepared = training.prepare_training_data(
                version_dir / "train.parquet", features, targets, params, work / f"run{run}", work / "bins"
            )
            prepare_s = time.perf_counter() - started
            prepare_peak = peak_rss_mib()
            reset_peak_rss()
            folds = make_folds(prepared.eras, args.folds, embargo=4)
            fold_seconds = []
            for target in targets:
                for fold in folds:
                    fold_started = time.perf_counter()
                    training.train_fold(prepared, fold, target, params, 0, work / f"run{run}" / "models")
                    fold_seconds.append(time.perf_counter() - fold_started)
            made = len(builds) - before
            print(
                f"run {run}: {len(folds)} folds x {len(targets)} targets = {len(fold_seconds)} models on "
                f"{prepared.rows:,} x {n_features:,}; bins constructed {made} time(s)"
                + (f" in {sum(builds[before:]):.1f} s" if made else " (reused from the cache)")
                + f"; prepare {prepare_s:.1f} s ({prepared.bins.record.loader} loader); "
                f"per model {min(fold_seconds):.1f}-{max(fold_seconds):.1f} s incl. loading the bins; "
                f"peak RSS preparing {prepare_peak:.0f} MiB, training the folds {peak_rss_mib():.0f} MiB"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
