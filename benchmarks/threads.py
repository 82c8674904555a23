"""LightGBM training speed with num_threads = the physical cores (numerflow's default) against
the logical ones (LightGBM's own default through OpenMP, which counts hyper-threads).

    uv run python -m benchmarks.threads --rows 200000 --features 500 --trees 40

LightGBM's docs (Parameters, num_threads) advise the number of real CPU cores: hyper-threads
share a core's caches and execution units, and histogram building is memory bound. The script
bins one Numerai-shaped Dataset (5-valued int8 features), then trains the same model with each
thread count in turn, `--reps` times interleaved, and prints the median seconds per tree. On a
machine without simultaneous multithreading the two counts are equal and it says so: there is
nothing to compare there.
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightgbm as lgb
import numpy as np
import psutil

from benchmarks.common import EXAMPLE_MODEL
from numerflow.config.lightgbm_names import physical_cores
from numerflow.config.models import LightGBMParams


def numerai_shaped(rows: int, features: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """int8 features in 0..4 (Numerai's quintiles) and a target planted in the first 20."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 5, size=(rows, features), dtype=np.int8)
    signal = data[:, : min(20, features)].astype(np.float32).mean(axis=1)
    target = signal + rng.normal(0, 1, rows).astype(np.float32)
    return data, target


def seconds_per_tree(dataset: lgb.Dataset, params: LightGBMParams, threads: int, trees: int) -> float:
    training = {**params.to_lightgbm(seed=0), "num_threads": threads}
    started = time.perf_counter()
    lgb.train(training, dataset, num_boost_round=trees)
    return (time.perf_counter() - started) / trees


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=500)
    parser.add_argument("--trees", type=int, default=40)
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()

    physical, logical = physical_cores(), psutil.cpu_count(logical=True) or 1
    print(f"cores: {physical} physical, {logical} logical (psutil)")
    counts = sorted({physical, logical})
    if len(counts) == 1:
        print(
            "no simultaneous multithreading here: physical and logical counts are equal, nothing to compare"
        )

    params = LightGBMParams(**{**EXAMPLE_MODEL, "n_estimators": args.trees})
    data, target = numerai_shaped(args.rows, args.features)
    started = time.perf_counter()
    dataset = lgb.Dataset(data, label=target, params=params.dataset_params(), free_raw_data=True).construct()
    del data
    print(f"{args.rows:,} rows x {args.features:,} features binned in {time.perf_counter() - started:.1f} s")

    timings: dict[int, list[float]] = {threads: [] for threads in counts}
    for _ in range(args.reps):
        for threads in counts:  # interleaved, so load from other jobs falls on both alike
            timings[threads].append(seconds_per_tree(dataset, params, threads, args.trees))
    medians = {threads: statistics.median(values) for threads, values in timings.items()}
    for threads, median in medians.items():
        kind = " + ".join(k for k, n in (("physical", physical), ("logical", logical)) if n == threads)
        cells = args.rows * args.features / median / 1e9
        print(f"num_threads={threads:<3} ({kind}): {median:.4f} s/tree, {cells:.2f}e9 cell-trees/s")
    if len(counts) == 2:
        print(f"logical / physical time per tree: {medians[logical] / medians[physical]:.2f}")


if __name__ == "__main__":
    main()
