"""Training-data sync: the data version a run uses (the configured one, or Numerai's newest for
`latest`) and the files it trains and scores on, downloaded only when they changed."""

from __future__ import annotations

import json
import re
from pathlib import Path

from numerflow.config.models import DataConfig
from numerflow.data.files import DataError
from numerflow.data.reference_files import SCORING_FILES
from numerflow.numerai.client import NumeraiClient, newest_data_version
from numerflow.numerai.download import DownloadResult, Expectation, expectation_for, fetch
from numerflow.progress import FileProgress

TRAINING_FILES = ("features.json", "train.parquet", "validation.parquet")
VERSION_DIR = re.compile(r"^v\d+\.\d+$")


def resolve_version(data: DataConfig, client: NumeraiClient | None) -> str:
    """The configured version, or for `latest` Numerai's newest version (or the newest local folder)."""
    if data.version != "latest":
        return data.version
    if client is not None:
        version = newest_data_version(client.list_datasets())
    else:
        local = [
            p.name
            for p in data.dir.glob("v*")
            if VERSION_DIR.match(p.name) and (p / "train.parquet").is_file()
        ]
        if not local:
            raise DataError(
                f"{data.dir}: no data version folder with train.parquet; set "
                "training.numerai.download: true, run `numerflow synth --out DIR`, "
                "or set training.data.version"
            )
        version = max(local, key=lambda v: tuple(int(x) for x in v[1:].split(".")))
    return version


def ensure_training_data(
    version_dir: Path, client: NumeraiClient, progress: FileProgress | None = None
) -> list[DownloadResult]:
    """features.json first (its feature list checks the parquet files), then train and validation,
    then the benchmark-model and meta-model files that BMC and MMC are scored against, where
    Numerai lists them for the version (v5.0 has no meta model). `progress(file name)` gives
    the report that follows that file's download."""
    version = version_dir.name

    def get(name: str, expectation: Expectation) -> DownloadResult:
        report = progress(name) if progress is not None else None
        return fetch(client, f"{version}/{name}", version_dir / name, expectation, on_progress=report)

    results = [get("features.json", expectation_for("features.json"))]
    features = json.loads((version_dir / "features.json").read_text(encoding="utf-8"))["feature_sets"].get(
        "all"
    )
    results += [get(name, expectation_for(name, features)) for name in TRAINING_FILES[1:]]
    listed = set(client.list_datasets())
    results += [get(name, expectation_for(name)) for name in SCORING_FILES if f"{version}/{name}" in listed]
    return results
