"""Does the 20k-row bin sample find the same bins as LightGBM's default 200k on your data?

    uv run python -m benchmarks.bin_sample --size 500000x1000          # generated data
    uv run python -m benchmarks.bin_sample --train data/v5.2/train.parquet --features 2376

Bins the same rows twice with numerflow's loader (sample 20,000 and 200,000), then prints how
many features got a different number of bins and whether 20 trees trained on each are identical.
Run it once on real Numerai data: a feature with rare values could need the larger sample.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from benchmarks.common import EXAMPLE_MODEL, dataset, feature_names
from numerflow.config.models import LightGBMParams
from numerflow.train.fit import train_booster
from numerflow.train.prepare import bin_training_rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="500000x1000", help="ROWSxFEATURES of generated data")
    parser.add_argument("--train", type=Path, help="a Numerai train.parquet instead of generated data")
    parser.add_argument("--features", type=int, help="first N features of features.json's 'all'")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "numerflow-bench-data")
    args = parser.parse_args()

    if args.train:
        train = args.train
        names = json.loads((train.parent / "features.json").read_text())["feature_sets"]["all"]
        features = names[: args.features] if args.features else names
    else:
        rows, n_features = (int(v) for v in args.size.lower().split("x"))
        version_dir = dataset(args.data_dir, rows, n_features)
        train, features = version_dir / "train.parquet", feature_names(version_dir, n_features)

    bins, trees = {}, {}
    with tempfile.TemporaryDirectory(prefix="numerflow-bin-sample-") as scratch:
        work = Path(scratch)
        for sample in (20_000, 200_000):
            params = LightGBMParams(
                **{**EXAMPLE_MODEL, "n_estimators": 20, "bin_construct_sample_cnt": sample}
            )
            prepared = bin_training_rows(
                train, features, ["target"], params, work / str(sample), work / "bins"
            )
            loaded = lgb.Dataset(str(prepared.dataset_path), params=prepared.dataset_params).construct()
            bins[sample] = np.array([loaded.feature_num_bin(i) for i in range(len(features))])
            target = pd.read_parquet(prepared.meta_path)["target"].to_numpy(np.float32)
            booster = train_booster(
                prepared, np.arange(prepared.rows), np.nan_to_num(target, nan=0.5), params, 0
            )
            trees[sample] = booster.model_to_string().split("parameters:")[0]
    differing = int((bins[20_000] != bins[200_000]).sum())
    print(
        f"{len(features)} features on {train}: {differing} with a different bin count "
        f"(20k sample: {bins[20_000].min()}-{bins[20_000].max()} bins a feature); "
        f"20 trees {'identical' if trees[20_000] == trees[200_000] else 'DIFFERENT'}"
    )


if __name__ == "__main__":
    main()
