"""Read Numerai parquet files: only the needed columns, features kept as int8.

The knobs users of the old scripts rely on for small machines live here: every-Nth-era
subsampling, `row_limit` (whole eras, most recent first) and `max_features`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from numerflow.config.models import FeaturesConfig

MISSING_FEATURE_VALUE = 2  # Numerai sets a feature to 2 when its data is missing for an era
REFETCH = "delete it and run again: numerflow downloads it afresh (training.numerai.download: true)"


class DataError(ValueError):
    """A data file is missing, lacks columns or holds values outside the Numerai schema."""


@dataclass
class NumeraiFrame:
    """Rows of one Numerai file: ids, era numbers, int8 features and float32 targets."""

    ids: np.ndarray
    eras: np.ndarray
    features: np.ndarray  # int8, rows x features (column-major: filled one column at a time)
    feature_names: list[str]
    targets: pd.DataFrame  # float32, one column per target, NaN where unknown

    def __len__(self) -> int:
        return len(self.ids)


def read_features_json(version_dir: Path) -> dict[str, object]:
    path = version_dir / "features.json"
    if not path.is_file():
        raise DataError(f"{path}: not found; run `numerflow synth --out DIR` or download the data")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); {REFETCH}") from None
    if not isinstance(data, dict) or "feature_sets" not in data:
        raise DataError(f"{path}: expected a JSON object with 'feature_sets' and 'targets'")
    return data


def select_features(features_json: dict[str, object], config: FeaturesConfig) -> list[str]:
    """Resolve features.yaml against features.json; errors name the config key."""
    sets = features_json["feature_sets"]
    assert isinstance(sets, dict)
    if config.feature_set is not None:
        if config.feature_set not in sets:
            raise DataError(
                f"features.yaml: feature_set: {config.feature_set!r} is not in features.json "
                f"(available: {', '.join(sorted(sets))})"
            )
        names = list(sets[config.feature_set])
    else:
        known = set(sets.get("all", []))
        names = list(config.features or [])
        unknown = [name for name in names if known and name not in known]
        if unknown:
            raise DataError(f"features.yaml: features: not in the dataset: {unknown[:5]}")
    if config.max_features is not None:
        names = names[: config.max_features]
    return names


def read_training(
    path: Path,
    features: list[str],
    targets: list[str],
    era_stride: int = 1,
    row_limit: int | None = None,
) -> NumeraiFrame:
    """Training rows: every `era_stride`-th era, the newest eras up to `row_limit` rows."""
    return _read(path, features, targets, era_filter=training_eras(path, era_stride, row_limit))


def training_eras(path: Path, era_stride: int = 1, row_limit: int | None = None) -> np.ndarray:
    """Era numbers to train on: every `era_stride`-th era, the newest first, up to `row_limit` rows."""
    eras = _era_column(path)
    kept = _subsample(np.unique(eras), era_stride)
    if row_limit is not None:
        kept = _newest_eras_within(eras, kept, row_limit)
    return kept


def labelled_eras(
    paths: list[Path], targets: list[str], era_stride: int = 1, row_limit: int | None = None
) -> list[np.ndarray]:
    """For each file, its eras to train on when `paths` are taken together: eras in which any of
    `targets` is known (resolved), every `era_stride`-th of them anchored on the newest, the
    newest up to `row_limit` rows. Reads only the era and target columns."""
    per_file = []
    for path in paths:
        schema = parquet_schema(path)
        missing = [t for t in targets if t not in schema.names]
        if missing:
            raise DataError(f"{path}: missing target columns {missing}")
        with reading_rows(path):
            table = pq.read_table(path, columns=["era", *targets])
        eras = to_era_numbers(path, table["era"].to_numpy(zero_copy_only=False))
        known = np.zeros(len(eras), dtype=bool)
        for target in targets:
            known |= ~np.isnan(table[target].to_numpy(zero_copy_only=False).astype(np.float32))
        per_file.append((eras, np.unique(eras[known])))
    kept = _subsample(np.unique(np.concatenate([resolved for _, resolved in per_file])), era_stride)
    if row_limit is not None:
        kept = _newest_eras_within(np.concatenate([eras for eras, _ in per_file]), kept, row_limit)
    return [np.intersect1d(resolved, kept) for _, resolved in per_file]


def read_validation(
    path: Path,
    features: list[str],
    targets: list[str],
    last_train_era: int,
    embargo: int,
    era_stride: int = 1,
) -> NumeraiFrame:
    """Validation rows that have targets, past the embargo after the last training era."""
    eras = validation_eras(path, last_train_era, embargo, era_stride)
    frame = _read(path, features, targets, era_filter=eras)
    has_target = frame.targets[targets[0]].notna().to_numpy()
    return _take(frame, has_target)


def validation_eras(path: Path, last_train_era: int, embargo: int, era_stride: int = 1) -> np.ndarray:
    """Labelled validation eras past the embargo after the last training era, every Nth."""
    parquet_schema(path)
    with reading_rows(path):
        table = pq.read_table(path, columns=["era", "data_type"])
    labelled = pc.equal(table["data_type"], "validation").to_numpy(zero_copy_only=False)
    eras = to_era_numbers(path, table["era"].to_numpy(zero_copy_only=False))
    return _subsample(np.unique(eras[labelled & embargo_after(eras, last_train_era, embargo)]), era_stride)


def read_live(path: Path, features: list[str]) -> NumeraiFrame:
    """The live rows; a live file without rows or with an id twice is refused."""
    live = _read(path, features, [], era_filter=None, eras_are_numbers=False)
    if len(live) == 0:
        raise DataError(f"{path}: the live file has no rows; {REFETCH}")
    check_unique_ids(path, live.ids)
    return live


def read_live_ids(path: Path) -> np.ndarray:
    """The ids of a live file, the ones a submission must match."""
    parquet_schema(path)
    with reading_rows(path):
        ids = pq.read_table(path, columns=["id"])["id"].to_numpy(zero_copy_only=False).astype(str)
    check_unique_ids(path, ids)
    return ids


def check_unique_ids(path: Path, ids: np.ndarray) -> None:
    repeated = pd.Index(ids)[pd.Index(ids).duplicated()].unique()
    if len(repeated):
        raise DataError(
            f"{path}: {len(repeated)} ids appear more than once (e.g. {list(repeated[:3])}); "
            f"a submission needs one prediction per id: {REFETCH}"
        )


@contextmanager
def reading_rows(path: Path) -> Iterator[None]:
    """A row group that cannot be decoded (a damaged or cut-short file) as a `DataError`."""
    try:
        yield
    except (pa.ArrowException, OSError) as exc:
        reason = " ".join(str(exc).split())  # Arrow's reasons span lines
        raise DataError(f"{path}: a row group cannot be read ({reason}); {REFETCH}") from None


def _read(
    path: Path,
    features: list[str],
    targets: list[str],
    era_filter: np.ndarray | None,
    eras_are_numbers: bool = True,
) -> NumeraiFrame:
    schema = parquet_schema(path)
    id_column = "id"
    wanted = [id_column, "era", *features, *targets]
    missing = [name for name in wanted if name not in schema.names]
    if missing:
        raise DataError(f"{path}: missing columns {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    filters = None
    if era_filter is not None:
        filters = [("era", "in", [f"{e:04d}" for e in era_filter.tolist()])]
    with reading_rows(path):
        table = pq.read_table(path, columns=wanted, filters=filters)
    eras_raw = table["era"].to_numpy(zero_copy_only=False)
    eras = to_era_numbers(path, eras_raw) if eras_are_numbers else np.zeros(len(eras_raw), np.int64)
    return NumeraiFrame(
        ids=table[id_column].to_numpy(zero_copy_only=False).astype(str),
        eras=eras,
        features=int8_matrix(path, table, features),
        feature_names=list(features),
        targets=pd.DataFrame(
            {name: table[name].to_numpy(zero_copy_only=False).astype(np.float32) for name in targets}
        ),
    )


def parquet_schema(path: Path) -> pa.Schema:
    if not path.is_file():
        raise DataError(f"{path}: not found")
    try:
        return pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a readable parquet file ({exc})") from None


def int8_matrix(path: Path, table: pa.Table, features: list[str]) -> np.ndarray:
    """Features as an int8 matrix, missing values set to 2; values outside 0..4 are an error."""
    matrix = np.empty((table.num_rows, len(features)), dtype=np.int8, order="F")
    for j, name in enumerate(features):
        column = table[name]
        if column.null_count:
            column = pc.fill_null(column, MISSING_FEATURE_VALUE)
        values = column.to_numpy(zero_copy_only=False)
        if values.dtype.kind == "f" and np.isnan(values).any():
            values = np.where(np.isnan(values), MISSING_FEATURE_VALUE, values)
        if len(values) and (values.min() < 0 or values.max() > 4):
            raise DataError(
                f"{path}: column {name} has values outside 0..4 (from {values.min()} to {values.max()}); "
                f"Numerai's features are the integers 0..4: {REFETCH}"
            )
        matrix[:, j] = values
    return matrix


def _era_column(path: Path) -> np.ndarray:
    parquet_schema(path)
    with reading_rows(path):
        raw = pq.read_table(path, columns=["era"])["era"].to_numpy(zero_copy_only=False)
    return to_era_numbers(path, raw)


def to_era_numbers(path: Path, raw: np.ndarray) -> np.ndarray:
    try:
        return pd.to_numeric(pd.Series(raw), errors="raise").to_numpy(np.int64)
    except ValueError:
        raise DataError(f"{path}: column era holds values that are not era numbers") from None


def _subsample(eras: np.ndarray, stride: int) -> np.ndarray:
    # Anchor on the newest era so the most recent data is always kept.
    return np.sort(np.unique(eras)[::-1][::stride])


def _newest_eras_within(eras: np.ndarray, kept: np.ndarray, row_limit: int) -> np.ndarray:
    counts = pd.Series(eras).value_counts()
    chosen, total = [], 0
    for era in kept[::-1]:
        total += int(counts.get(era, 0))
        if total > row_limit and chosen:
            break
        chosen.append(era)
    return np.sort(np.asarray(chosen, dtype=np.int64))


def _take(frame: NumeraiFrame, mask: np.ndarray) -> NumeraiFrame:
    return NumeraiFrame(
        ids=frame.ids[mask],
        eras=frame.eras[mask],
        features=np.ascontiguousarray(frame.features[mask]),
        feature_names=frame.feature_names,
        targets=frame.targets[mask].reset_index(drop=True),
    )


def embargo_after(eras: Sequence[int], last_train_era: int, embargo: int) -> np.ndarray:
    """Boolean mask of `eras` that lie strictly beyond `last_train_era + embargo`."""
    values = np.asarray(eras, dtype=np.int64)
    return values > last_train_era + embargo
