"""Live predictions of a trained run: its stack of base models on a round's live file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel

from numerflow.data.files import read_live
from numerflow.io import atomic_path
from numerflow.runs.manifest import TrainedRun
from numerflow.score.stacking import Stacker, era_rank
from numerflow.train.predict import predict


class LivePredictions(BaseModel):
    path: Path
    rows: int
    live_file: Path  # the live data they predict: a submission must hold exactly its ids


def predict_live(run: TrainedRun, live_file: Path, out_path: Path) -> LivePredictions:
    """Live predictions from the run's stack of base models: each target's final model when the
    run trained one (`training.final_model`), else the mean of its folds."""
    live = read_live(live_file, run.feature_names)
    stacker = Stacker.model_validate(run.stacker)
    base = predict(run.submission_models(), live.features)
    base.index = pd.Index(live.ids, name="id")
    scores = stacker.combine(era_rank(base[stacker.columns], np.zeros(len(live), dtype=np.int64)))
    with atomic_path(out_path) as tmp:
        base.assign(stack=scores.to_numpy()).to_parquet(tmp)
    return LivePredictions(path=out_path, rows=len(base), live_file=live_file)
