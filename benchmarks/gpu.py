"""CPU against each GPU learner this machine can use, on Numerai-shaped data at several sizes.

    uv run python -m benchmarks.gpu                                   # default sizes, 40 trees
    uv run python -m benchmarks.gpu --sizes 25000x60 100000x2376 300000x2376 1000000x2376 --write

For each size one Dataset is built (random 5-valued int8 features with a planted signal, handed
to LightGBM as Arrow: no float copy), then every device trains the same trees on it with
Numerai's tutorial parameters: set-up (the first 2 trees), seconds a tree after that, peak VRAM
(NVML's used memory above idle, sampled every 50 ms) next to the VRAM model's estimate, and how
closely the GPU model's predictions agree with the CPU's. From two or more sizes it prints the
break-even size and the fitted VRAM constants; `--write` stores them where the GPU decision
reads them (`~/.cache/numerflow/gpu-calibration.json`), so a machine is calibrated once. On a
machine without a usable GPU it measures the CPU side and says so.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import lightgbm as lgb
import numpy as np
import pyarrow as pa

from numerflow.config.models import LightGBMParams
from numerflow.gpu.calibration import Measurement, calibrate
from numerflow.gpu.capability import Capability, check_capability, default_cache_dir
from numerflow.gpu.decision import choose_device
from numerflow.gpu.probe import GpuDevice, GpuProbe, probe_gpus
from numerflow.gpu.shape import parse_shape
from numerflow.gpu.vram import BUILT_IN, MIB, Learner, TrainingShape, save_calibration

# Numerai's tutorial model (numerai/example-scripts), the parameters the H100 figures were measured with.
TUTORIAL = LightGBMParams(learning_rate=0.01, max_depth=5, num_leaves=31, colsample_bytree=0.1)
SETUP_TREES = 2  # the first trees carry the GPU's set-up (kernel build, uploads)
SAMPLE_EVERY_S = 0.05
AGREEMENT_ROWS = 5_000


def numerai_shaped(rows: int, features: int, seed: int = 0) -> tuple[pa.Table, np.ndarray]:
    """Features in 0..4 (int8, like Numerai's) and a target that depends on the first ten."""
    rng = np.random.default_rng(seed)
    columns = [rng.integers(0, 5, rows, dtype=np.int8) for _ in range(features)]
    signal = np.mean(columns[: min(10, features)], axis=0, dtype=np.float32) / 4
    target = np.clip(signal + rng.normal(0, 0.2, rows).astype(np.float32), 0, 1)
    table = pa.table({f"feature_{i:04d}": column for i, column in enumerate(columns)})
    return table, target


class VramSampler:
    """Peak NVML used memory of one card above its level when sampling started."""

    def __init__(self, device: GpuDevice | None) -> None:
        self.device, self.peak = device, 0

    @contextmanager
    def sampling(self) -> Iterator[VramSampler]:
        if self.device is None or self.device.mig:
            yield self  # MIG slices' memory is not sampled here
            return
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(self.device.index)
        idle = pynvml.nvmlDeviceGetMemoryInfo(handle).used
        done = threading.Event()

        def sample() -> None:
            while not done.wait(SAMPLE_EVERY_S):
                self.peak = max(self.peak, pynvml.nvmlDeviceGetMemoryInfo(handle).used - idle)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            yield self
        finally:
            done.set()
            sampler.join()
            pynvml.nvmlShutdown()


def train_timed(dataset: lgb.Dataset, params: dict[str, Any], trees: int) -> tuple[lgb.Booster, float, float]:
    """Train `trees` trees; seconds of the first SETUP_TREES, and seconds a tree after them."""
    marks: list[float] = []
    started = time.perf_counter()

    def mark(_: Any) -> None:
        marks.append(time.perf_counter())

    booster = lgb.train(params, dataset, num_boost_round=trees, callbacks=[mark])
    setup = marks[SETUP_TREES - 1] - started
    per_tree = (marks[-1] - marks[SETUP_TREES - 1]) / (trees - SETUP_TREES)
    return booster, setup, per_tree


def usable_learners(probe: GpuProbe) -> tuple[GpuDevice | None, dict[Learner, Capability], list[str]]:
    """The card the decision would pick and each GPU learner LightGBM can train with on it."""
    device = choose_device(probe, None)
    if device is None:
        return None, {}, [f"no GPU found: {probe.reason}"]
    usable: dict[Learner, Capability] = {}
    notes = []
    for learner in ("gpu", "cuda"):
        capability = check_capability(learner, device, probe)
        if capability.ok:
            usable[learner] = capability
        else:
            notes.append(f"learner {learner}: {capability.reason}")
    return device, usable, notes


def measure_size(
    rows: int,
    features: int,
    trees: int,
    device: GpuDevice | None,
    learners: dict[Learner, Capability],
    report: Callable[[str], None],
) -> dict[Learner, Measurement]:
    table, target = numerai_shaped(rows, features)
    base = TUTORIAL.model_copy(update={"num_iterations": trees})
    dataset = lgb.Dataset(table, label=target, params=base.dataset_params(), free_raw_data=False).construct()
    sample = table.slice(0, AGREEMENT_ROWS).to_pandas().to_numpy(np.float32)
    cpu_booster, cpu_setup, cpu_tree = train_timed(dataset, base.to_lightgbm(seed=0), trees)
    cpu_predictions = cpu_booster.predict(sample)
    report(_row(rows, features, "cpu", cpu_setup, cpu_tree))
    measured = {}
    for learner, capability in learners.items():
        ids = {"gpu_platform_id": capability.platform_id, "gpu_device_id": capability.device_id}
        params = base.model_copy(update={"device_type": learner, **ids}).to_lightgbm(seed=0)
        sampler = VramSampler(device)
        with sampler.sampling():
            booster, setup, per_tree = train_timed(dataset, params, trees)
        agreement = float(np.corrcoef(cpu_predictions, booster.predict(sample))[0, 1])
        estimate = BUILT_IN[learner].estimate(TrainingShape(rows=rows, features=features))
        report(
            _row(
                rows,
                features,
                learner,
                setup,
                per_tree,
                cpu_tree / per_tree,
                sampler.peak,
                estimate,
                agreement,
            )
        )
        measured[learner] = Measurement(
            rows=rows,
            features=features,
            cpu_s_per_tree=cpu_tree,
            gpu_s_per_tree=per_tree,
            peak_vram_bytes=sampler.peak or None,
        )
    return measured


COLUMNS = {"rows x features": 22, "cells": 9, "device": 6, "set-up s": 9, "s/tree": 8, "speed-up": 8,
           "peak VRAM": 10, "estimate": 10, "corr": 7}  # fmt: skip
HEADER = " ".join(f"{name:>{width}}" for name, width in COLUMNS.items())


def _row(
    rows: int,
    features: int,
    device: str,
    setup: float,
    per_tree: float,
    speedup: float | None = None,
    peak: int | None = None,
    estimate: int | None = None,
    agreement: float | None = None,
) -> str:
    def shown(value: float | None, form: str) -> str:
        return "-" if value is None else form.format(value)

    values = [
        f"{rows:,} x {features:,}",
        f"{rows * features:.2e}",
        device,
        f"{setup:.2f}",
        f"{per_tree:.4f}",
        shown(speedup, "{:.1f}x"),
        shown(None if peak is None else peak / MIB, "{:,.0f} MiB"),
        shown(None if estimate is None else estimate / MIB, "{:,.0f} MiB"),
        shown(agreement, "{:.4f}"),
    ]
    return " ".join(f"{value:>{width}}" for value, width in zip(values, COLUMNS.values(), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", nargs="+", default=["25000x60", "100000x2376", "300000x2376"], help="ROWSxFEATURES each"
    )
    parser.add_argument(
        "--trees", type=int, default=40, help=f"trees a device trains (more than {SETUP_TREES})"
    )
    parser.add_argument(
        "--write", action="store_true", help="store the fitted constants for the GPU decision"
    )
    args = parser.parse_args()
    if args.trees <= SETUP_TREES:
        parser.error(f"--trees must be more than {SETUP_TREES}")
    sizes = [parse_shape(size) for size in args.sizes]

    probe = probe_gpus()
    device, learners, notes = usable_learners(probe)
    print(f"CPU: {os.cpu_count()} cores; GPU: {probe.describe()}; LightGBM {lgb.__version__}")
    for note in notes:
        print(note)
    print(HEADER)
    measured: dict[Learner, list[Measurement]] = {learner: [] for learner in learners}
    for rows, features in sizes:
        for learner, measurement in measure_size(rows, features, args.trees, device, learners, print).items():
            measured[learner].append(measurement)

    if not learners:
        print("only the CPU side was measured (no GPU LightGBM can use here): nothing to calibrate")
        return
    calibrated = []
    for learner, measurements in measured.items():
        source = f"benchmarks/gpu.py on {device.name if device else '?'} vs {os.cpu_count()} CPU cores, "
        model = calibrate(learner, measurements, source + datetime.now(UTC).strftime("%Y-%m-%d"))
        if model is None:
            print(f"{learner}: measure two or more sizes to fit the break-even and the VRAM constants")
            continue
        built_in = BUILT_IN[learner]
        print(
            f"{learner}: break-even about {model.min_gpu_cells:.2e} cells (a fold's rows x features); "
            f"VRAM about {model.base_bytes / MIB:,.0f} MiB + {model.bytes_per_cell:.3f} byte a cell "
            f"(built in: {built_in.base_bytes / MIB:,.0f} MiB + {built_in.bytes_per_cell:.3f})"
        )
        calibrated.append(model)
    if args.write and calibrated:
        print(f"wrote {save_calibration(calibrated, default_cache_dir())}: the GPU decision now uses these")


if __name__ == "__main__":
    main()
