"""Numerai-format synthetic data with a planted signal.

Writes `<out>/<version>/{train,validation,live}.parquet` and `features.json` in the v5 schema:
string `id` index, 4-digit `era` strings, `data_type`, int8 `feature_*` in 0..4, a main
`target` and auxiliary `target_<name>_20|60` targets in 5 bins of [0, 1] (auxiliary ones may be
NaN), validation eras without targets at the end, and a live era. With `reference_files` it
also writes `validation_benchmark_models.parquet` and `meta_model.parquet` (see `_references`).

The main target depends on a few "informative" features with weights that drift from era to
era around a positive mean, so a working model scores a clearly positive mean per-era CORR
while a model fitted to shuffled targets does not. Eras are generated one at a time from a
seed derived from (seed, era), so output is deterministic and memory stays flat at any size.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from numerflow.data.reference_files import (
    BENCHMARK_FILE,
    META_MODEL_COLUMN,
    META_MODEL_FILE,
    benchmark_column,
)
from numerflow.io import atomic_path, write_json_atomic

# Feature values come from a standard normal cut at its 5/25/75/95 % quantiles, as in Numerai.
FEATURE_CUTS = np.array([-1.6449, -0.6745, 0.6745, 1.6449], dtype=np.float32)
# Targets take 5 values with Numerai's 5/20/50/20/5 % split.
TARGET_BIN_EDGES = np.array([0.05, 0.25, 0.75, 0.95])
TARGET_VALUES = np.array([0.0, 0.25, 0.5, 0.75, 1.0], dtype=np.float32)
FEATURE_GROUPS = (
    "intelligence",
    "wisdom",
    "charisma",
    "dexterity",
    "strength",
    "constitution",
    "agility",
    "serenity",
)
ROW_GROUP_ROWS = 50_000
LIVE_ERA = "X"  # what Numerai's live file is reported to carry; nothing depends on it
# Reference predictions are a target's planted signal plus this much noise (in signal std):
# the meta model is the better informed, each benchmark model the weaker.
META_MODEL_NOISE = 1.0
BENCHMARK_NOISE = 2.0


@dataclass(frozen=True)
class AuxTarget:
    name: str
    weight_noise: float  # how far its feature weights stray from the main target's
    noise: float  # extra noise on top of the main target's
    nan_fraction: float


DEFAULT_AUX = (
    AuxTarget("target_ender_20", 0.0, 0.0, 0.0),  # from v5.2 on, `target` is ender_20
    AuxTarget("target_cyrusd_20", 0.3, 0.5, 0.02),
    AuxTarget("target_teager2b_20", 0.4, 0.6, 0.02),
    AuxTarget("target_ender_60", 0.8, 1.2, 0.05),
    AuxTarget("target_cyrusd_60", 0.9, 1.3, 0.05),
)


@dataclass(frozen=True)
class SynthSpec:
    """Shape of the synthetic dataset."""

    eras: int = 160  # labelled + unlabelled eras across train and validation
    rows_per_era: int = 200
    features: int = 60
    seed: int = 0
    version: str = "v5.2"
    validation_fraction: float = 0.25
    unlabelled_eras: int = 4  # validation eras at the end without targets, as in Numerai's file
    live_rows: int | None = None  # defaults to rows_per_era
    reference_files: bool = True  # benchmark-model and meta-model files beside validation.parquet
    signal: float = 0.15  # share of the main target's variance the informative features explain
    aux_targets: tuple[AuxTarget, ...] = field(default=DEFAULT_AUX)

    def __post_init__(self) -> None:
        checks = {
            "eras": self.eras >= 8,
            "rows_per_era": self.rows_per_era >= 20,
            "features": self.features >= 10,
            "seed": self.seed >= 0,
            "validation_fraction": 0 < self.validation_fraction < 1,
            "signal": 0 <= self.signal < 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"synthetic data spec: {', '.join(bad)} out of range "
                "(eras >= 8, rows_per_era >= 20, features >= 10, seed >= 0, "
                "0 < validation_fraction < 1, 0 <= signal < 1)"
            )
        if self.eras - self.train_eras <= self.unlabelled_eras:
            raise ValueError("synthetic data spec: too few eras left for validation")

    @property
    def train_eras(self) -> int:
        return round(self.eras * (1 - self.validation_fraction))

    @property
    def feature_names(self) -> list[str]:
        return [f"feature_{i:04d}" for i in range(self.features)]

    @property
    def target_names(self) -> list[str]:
        return ["target", *(aux.name for aux in self.aux_targets)]

    @property
    def meta_model_from_era(self) -> int:
        """The meta model covers the newer half of the validation eras, as Numerai's covers
        only recent eras."""
        return self.train_eras + (self.eras - self.train_eras) // 2 + 1


@dataclass(frozen=True)
class _Plan:
    """What stays fixed across eras: clusters, informative features and their base weights."""

    cluster_of: np.ndarray
    informative: np.ndarray
    base_weights: np.ndarray
    aux_weight_shift: dict[str, np.ndarray]


def generate(out: str | Path, spec: SynthSpec | None = None) -> Path:
    """Write the dataset and return `<out>/<version>`."""
    spec = spec or SynthSpec()
    target_dir = Path(out) / spec.version
    target_dir.mkdir(parents=True, exist_ok=True)
    plan = _plan(spec)
    labelled = spec.eras - spec.unlabelled_eras
    train = range(1, spec.train_eras + 1)
    validation = range(spec.train_eras + 1, spec.eras + 1)

    _write_file(target_dir / "train.parquet", spec, plan, ((e, "train", True) for e in train))
    with ExitStack() as files:
        sink = files.enter_context(_Sink(target_dir / "validation.parquet"))
        reference_sinks = [
            files.enter_context(_Sink(target_dir / name))
            for name in ((BENCHMARK_FILE, META_MODEL_FILE) if spec.reference_files else ())
        ]
        for era in validation:
            data_type = "validation" if era <= labelled else "test"
            frame, signals = _era_frame(spec, plan, era, data_type, era <= labelled)
            sink.add(frame)
            if reference_sinks:
                for reference_sink, references in zip(
                    reference_sinks, _references(spec, era, frame, signals), strict=True
                ):
                    reference_sink.add(references)
    _write_file(target_dir / "live.parquet", spec, plan, iter([(spec.eras + 1, "live", False)]))
    write_json_atomic(target_dir / "features.json", _features_json(spec, plan))
    write_json_atomic(
        target_dir / "synth_spec.json", {**asdict(spec), "informative": plan.informative.tolist()}
    )
    return target_dir


def _plan(spec: SynthSpec) -> _Plan:
    rng = np.random.default_rng([spec.seed, 0])
    n = spec.features
    cluster_of = np.arange(n) % max(1, n // 10)
    rng.shuffle(cluster_of)
    n_informative = max(4, n // 8)
    informative = np.sort(rng.choice(n, size=n_informative, replace=False))
    base_weights = rng.uniform(0.5, 1.5, size=n_informative) * rng.choice([-1, 1], n_informative)
    shifts = {aux.name: rng.normal(0, aux.weight_noise, size=n_informative) for aux in spec.aux_targets}
    return _Plan(cluster_of, informative, base_weights, shifts)


def _write_file(path: Path, spec: SynthSpec, plan: _Plan, eras: Iterator[tuple[int, str, bool]]) -> None:
    with _Sink(path) as sink:
        for era, data_type, labelled in eras:
            sink.add(_era_frame(spec, plan, era, data_type, labelled)[0])


class _Sink:
    """A parquet file written era by era in row groups of about ROW_GROUP_ROWS rows, renamed
    into place only when complete."""

    def __init__(self, path: Path) -> None:
        self._atomic = atomic_path(path)
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[pd.DataFrame] = []
        self._pending_rows = 0

    def __enter__(self) -> _Sink:
        self._tmp = self._atomic.__enter__()
        return self

    def add(self, frame: pd.DataFrame) -> None:
        self._pending.append(frame)
        self._pending_rows += len(frame)
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None and (self._pending or self._writer is None):
                self._flush()
        finally:
            if self._writer is not None:
                self._writer.close()
            self._atomic.__exit__(*exc)

    def _flush(self) -> None:
        table = pa.Table.from_pandas(pd.concat(self._pending), preserve_index=True)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, table.schema, compression="snappy")
        self._writer.write_table(table, row_group_size=len(table))
        self._pending, self._pending_rows = [], 0


def _era_frame(
    spec: SynthSpec, plan: _Plan, era: int, data_type: str, labelled: bool
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """One era's rows, and each target's planted signal (before noise and binning)."""
    rng = np.random.default_rng([spec.seed, era])
    rows = (spec.live_rows or spec.rows_per_era) if data_type == "live" else spec.rows_per_era
    latent = rng.standard_normal((rows, plan.cluster_of.max() + 1), dtype=np.float32)
    noise = rng.standard_normal((rows, spec.features), dtype=np.float32)
    continuous = 0.7 * latent[:, plan.cluster_of] + 0.714 * noise
    features = np.searchsorted(FEATURE_CUTS, continuous).astype(np.int8)

    frame = pd.DataFrame(features, columns=spec.feature_names)
    frame.insert(0, "data_type", data_type)
    frame.insert(0, "era", LIVE_ERA if data_type == "live" else f"{era:04d}")
    frame.index = pd.Index(_ids(rng, era, rows), name="id")

    # Era-varying weights: each era scales every informative weight by a factor around 1.
    era_weights = plan.base_weights * rng.normal(1.0, 0.8, size=len(plan.base_weights))
    informative = features[:, plan.informative].astype(np.float32) - 2.0
    signals = {"target": _signal(informative, era_weights)}
    targets = {"target": _target(rng, signals["target"], spec.signal, 0.0)}
    for aux in spec.aux_targets:
        if aux.weight_noise == 0 and aux.noise == 0:
            signals[aux.name], values = signals["target"], targets["target"].copy()
        else:
            signals[aux.name] = _signal(informative, era_weights + plan.aux_weight_shift[aux.name])
            values = _target(rng, signals[aux.name], spec.signal, aux.noise)
            values[rng.random(rows) < aux.nan_fraction] = np.nan
        targets[aux.name] = values
    for name, values in targets.items():
        frame[name] = values if labelled else np.full(rows, np.nan, dtype=np.float32)
    return frame, signals


def _references(
    spec: SynthSpec, era: int, frame: pd.DataFrame, signals: dict[str, np.ndarray]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """An era's benchmark models (one per auxiliary target: its planted signal plus
    BENCHMARK_NOISE) and meta model (the main target's signal plus META_MODEL_NOISE, in the
    eras it covers), ranked into (0, 1) like Numerai's."""
    rng = np.random.default_rng([spec.seed, era, 2])  # its own stream: the data stays as it was
    columns = {"era": frame["era"], "data_type": frame["data_type"]}
    benchmarks = pd.DataFrame(columns, index=frame.index)
    for aux in spec.aux_targets:
        benchmarks[benchmark_column(spec.version, aux.name)] = _noisy_rank(
            rng, signals[aux.name], BENCHMARK_NOISE
        )
    meta = pd.DataFrame(columns, index=frame.index)
    meta[META_MODEL_COLUMN] = _noisy_rank(rng, signals["target"], META_MODEL_NOISE)
    covered = era >= spec.meta_model_from_era
    return benchmarks, meta if covered else meta.iloc[:0]  # no rows outside the covered eras


def _noisy_rank(rng: np.random.Generator, signal: np.ndarray, noise: float) -> np.ndarray:
    return _percentiles(signal + rng.standard_normal(len(signal)) * noise).astype(np.float32)


def _percentiles(values: np.ndarray) -> np.ndarray:
    """Each value's rank within the era, in (0, 1)."""
    return (np.argsort(np.argsort(values, kind="stable"), kind="stable") + 0.5) / len(values)


def _signal(informative: np.ndarray, weights: np.ndarray) -> np.ndarray:
    raw = informative @ weights
    return (raw - raw.mean()) / (raw.std() + 1e-9)


def _target(rng: np.random.Generator, raw: np.ndarray, signal: float, extra: float) -> np.ndarray:
    noise_scale = np.sqrt((1 - signal) / signal) if signal > 0 else 1.0
    mix = raw * (signal > 0) + rng.standard_normal(len(raw)) * noise_scale * (1 + extra)
    # Bin by rank within the era: 5/20/50/20/5 % into 0, .25, .5, .75, 1.
    return TARGET_VALUES[np.searchsorted(TARGET_BIN_EDGES, _percentiles(mix))]


def _ids(rng: np.random.Generator, era: int, rows: int) -> list[str]:
    # 15 hex digits like Numerai's ids; the low 24 bits count rows, so ids never collide.
    high = rng.integers(0, 2**36, size=rows, dtype=np.uint64) << np.uint64(24)
    counter = np.arange(rows, dtype=np.uint64) + np.uint64((era * 65_537) % 2**24)
    values = high | (counter % np.uint64(2**24))
    return [f"n{v:015x}" for v in values.tolist()]


def _features_json(spec: SynthSpec, plan: _Plan) -> dict[str, object]:
    rng = np.random.default_rng([spec.seed, 1])
    names = np.array(spec.feature_names)
    order = rng.permutation(spec.features)
    # `small` keeps half of the informative features so the default config can find the signal.
    keep = set(plan.informative[: max(2, len(plan.informative) // 2)].tolist())
    small_size = max(len(keep), spec.features // 4)
    rest = [i for i in order.tolist() if i not in keep]
    small = sorted(keep | set(rest[: max(0, small_size - len(keep))]))
    medium = sorted(set(small) | set(rest[: spec.features // 2]))
    sets: dict[str, list[str]] = {
        "small": names[small].tolist(),
        "medium": names[medium].tolist(),
        "all": names.tolist(),
    }
    for group, members in zip(FEATURE_GROUPS, np.array_split(order, len(FEATURE_GROUPS)), strict=True):
        sets[group] = names[np.sort(members)].tolist()
    return {"feature_sets": sets, "targets": spec.target_names}
