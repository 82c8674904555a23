"""Per-round latency: 7k live rows through every fold x target model of 2,000 trees.

    uv run python -m benchmarks.live_latency --folds 4 --targets 2 --trees 2000 --features 2376

Trains folds x targets real models (2,000 trees, Numerai's example parameters) on a small
generated training set, then times what the per-round flow does with them: `predict_live`
(read the live file, load every model, predict, era-rank and stack, write) and
`make_submission` (validate against the live ids, write the CSV). Prediction cost depends on
the trees and the live rows, not on how many rows the models were trained on.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import EXAMPLE_MODEL, dataset, feature_names
from numerflow.config.models import LightGBMParams
from numerflow.runs.manifest import TrainedRun
from numerflow.score.stacking import Stacker
from numerflow.submit.file import make_submission
from numerflow.submit.live import predict_live
from numerflow.train.fit import train_booster
from numerflow.train.prepare import bin_training_rows

TARGET_NAMES = ["target", "target_cyrusd_20", "target_teager2b_20", "target_ender_60", "target_cyrusd_60"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--targets", type=int, default=2, choices=range(1, len(TARGET_NAMES) + 1))
    parser.add_argument("--trees", type=int, default=2000)
    parser.add_argument("--features", type=int, default=2376)
    parser.add_argument("--live-rows", type=int, default=7000)
    parser.add_argument("--train-rows", type=int, default=20000)
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "numerflow-bench-data")
    args = parser.parse_args()

    version_dir = dataset(args.data_dir, args.train_rows, args.features, live_rows=args.live_rows)
    features = feature_names(version_dir, args.features)
    targets = TARGET_NAMES[: args.targets]
    params = LightGBMParams(**{**EXAMPLE_MODEL, "n_estimators": args.trees})
    with tempfile.TemporaryDirectory(prefix="numerflow-live-") as scratch:
        work = Path(scratch)
        prepared = bin_training_rows(
            version_dir / "train.parquet", features, targets, params, work / "prepared", work / "bins"
        )
        meta = pd.read_parquet(prepared.meta_path)
        models: dict[str, list[Path]] = {}
        started = time.perf_counter()
        for target in targets:
            label = np.nan_to_num(meta[target].to_numpy(np.float32), nan=0.5)
            for fold in range(args.folds):
                rows = np.flatnonzero(np.arange(prepared.rows) % args.folds != fold)
                booster = train_booster(prepared, rows, label[rows], params, seed=fold)
                path = work / "models" / target / f"fold_{fold}.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                booster.save_model(str(path))
                models.setdefault(target, []).append(path)
        train_s = time.perf_counter() - started
        run = TrainedRun(
            run_id="bench",
            slot="main",
            slot_dir=work,
            data_version=version_dir.name,
            feature_names=features,
            models=models,
            stacker=Stacker(
                kind="mean", columns=targets, weights=[1 / len(targets)] * len(targets)
            ).model_dump(),
        )
        started = time.perf_counter()
        live = predict_live(run, version_dir / "live.parquet", work / "live_predictions.parquet")
        predict_s = time.perf_counter() - started
        started = time.perf_counter()
        make_submission(live, work / "submission.csv")
        submit_s = time.perf_counter() - started
        n_models = sum(len(paths) for paths in models.values())
        print(
            f"{n_models} models ({args.folds} folds x {len(targets)} targets) of {args.trees} trees, "
            f"{args.features} features (trained in {train_s:.0f} s); {live.rows:,} live rows: "
            f"predict_live {predict_s:.2f} s, make_submission {submit_s:.2f} s, "
            f"total {predict_s + submit_s:.2f} s"
        )


if __name__ == "__main__":
    main()
