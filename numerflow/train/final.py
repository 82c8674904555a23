"""The final model of a target: trained on every labelled row the run binned for it (train and
validation eras together), after the fold models have been validated.

It trains on the whole binned Dataset, never a subset: a subset is a copy next to the loaded
bins (about 2 bytes a cell in all, 31 GB for the full 6.6M x 2,376 labelled set), where the
whole set costs about 1 byte a cell. Rows whose target is unknown (auxiliary targets) weigh 0
instead, so they add nothing to the gradients and hessians the trees are grown from. A GPU
error steps down the fallback ladder as a fold does."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from numerflow.config.models import LightGBMParams
from numerflow.train.device import FallbackStep
from numerflow.train.fit import on_ladder, train_booster
from numerflow.train.model_files import save_booster
from numerflow.train.prepare import PreparedData
from numerflow.train.progress import ProgressReport

FINAL_DIR = "final"
UNKNOWN_LABEL = 0.5  # any finite value: these rows weigh 0


class FinalResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    target: str
    model_path: Path
    rows: int  # rows whose target is known: what the model learned from
    seconds: float
    device_type: str
    step: str = Field("", validation_alias=AliasChoices("step", "tier"))  # older manifests: "tier"
    downgrades: list[dict[str, str]] = []


def final_model_path(models_dir: Path, target: str) -> Path:
    return models_dir / FINAL_DIR / f"{target}.txt"


def fit_final(
    prepared: PreparedData,
    target: str,
    params: LightGBMParams,
    seed: int,
    models_dir: Path,
    on_progress: ProgressReport | None = None,
) -> FinalResult:
    """Train `target` on every prepared row; rows where it is unknown weigh 0."""
    started = time.perf_counter()
    label = pd.read_parquet(prepared.meta_path, columns=[target])[target].to_numpy(np.float32)
    known = ~np.isnan(label)
    weight = None if known.all() else known.astype(np.float32)
    booster = train_booster(
        prepared,
        np.arange(prepared.rows),
        np.where(known, label, np.float32(UNKNOWN_LABEL)),
        params,
        seed,
        on_progress,
        weight=weight,
    )
    model_path = final_model_path(models_dir, target)
    save_booster(model_path, booster)
    return FinalResult(
        target=target,
        model_path=model_path,
        rows=int(known.sum()),
        seconds=round(time.perf_counter() - started, 3),
        device_type=params.device_type,
    )


def fit_final_on_ladder(
    prepared: PreparedData,
    target: str,
    ladder: list[FallbackStep],
    seed: int,
    models_dir: Path,
    on_progress: ProgressReport | None = None,
) -> FinalResult:
    """`fit_final` on the first rung; a GPU error retries it on the next, down to the CPU."""
    result, position, downgrades = on_ladder(
        ladder, lambda step: fit_final(prepared, target, step.params, seed, models_dir, on_progress)
    )
    return result.model_copy(update={"step": ladder[position].name, "downgrades": downgrades})
