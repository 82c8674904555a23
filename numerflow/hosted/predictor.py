"""The function Numerai runs: built here, pickled by value, so it needs nothing from numerflow.

This module imports only what Numerai's image has (numpy, pandas, lightgbm). cloudpickle writes
a nested function as code already; the module is also registered with `register_pickle_by_value`
while the pickle is written (`numerflow.hosted.build`), so nothing from it is ever written as a
reference to numerflow. The function travels as code plus the plain data it closes over: model
strings, feature names and stacking weights. It repeats numerflow's live path
(`numerflow.submit.live.predict_live` and `numerflow.submit.file.make_submission`): each
target's models averaged, ranked as (rank - 0.5) / n, weighted by the stacker, ranked again.
"""

from __future__ import annotations

from collections.abc import Callable

import lightgbm as lgb
import numpy as np
import pandas as pd

MISSING_FEATURE_VALUE = 2  # as numerflow reads live files: a missing feature is the middle bin

Predict = Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]


def make_predict(
    model_strings: dict[str, list[str]], feature_names: list[str], columns: list[str], weights: list[float]
) -> Predict:
    """`predict(live_features, live_benchmark_models)` over plain data only."""

    def predict(live_features: pd.DataFrame, live_benchmark_models: pd.DataFrame) -> pd.DataFrame:
        features = live_features[feature_names].fillna(MISSING_FEATURE_VALUE).to_numpy(dtype=np.float32)
        count = len(features)
        ranked = np.empty((count, len(columns)), dtype=np.float64)
        for j, column in enumerate(columns):
            boosters = [lgb.Booster(model_str=text) for text in model_strings[column]]
            mean = np.mean([booster.predict(features) for booster in boosters], axis=0)
            ranked[:, j] = (pd.Series(mean).rank(method="average").to_numpy(np.float64) - 0.5) / count
        stack = ranked @ np.asarray(weights, dtype=np.float64)
        final = pd.Series(stack).rank(method="average").to_numpy(dtype=np.float64)
        return pd.DataFrame({"prediction": (final - 0.5) / count}, index=live_features.index)

    return predict
