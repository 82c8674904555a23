"""The pickle of a trained slot: numerflow's live prediction as one function Numerai can run.

Written beside the slot's manifest (`model_upload.pkl`) and recorded in it (hash, size, the
Python version and Numerai image it targets), so the manifest says which file is uploaded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
from pydantic import BaseModel

from numerflow.hosted import predictor
from numerflow.hosted.runtime import Image
from numerflow.io import atomic_path
from numerflow.runs.manifest import Manifest, read_manifest, write_manifest
from numerflow.submit.file import file_sha256

PICKLE_NAME = "model_upload.pkl"


class PickleRecord(BaseModel):
    path: Path
    sha256: str
    bytes: int
    python: str
    docker_image: str
    trained_run_id: str
    models: int  # LightGBM models inside


@contextlib.contextmanager
def _by_value() -> Iterator[None]:
    """Functions of `predictor` pickled as code, not as a reference to a numerflow module."""
    cloudpickle.register_pickle_by_value(predictor)
    try:
        yield
    finally:
        cloudpickle.unregister_pickle_by_value(predictor)


def write_pickle(function: Any, path: Path) -> None:
    """Write `function` with cloudpickle, atomically."""
    with _by_value(), atomic_path(path) as tmp, tmp.open("wb") as handle:
        cloudpickle.dump(function, handle)  # streamed: a big slot's model strings are not copied again


def build_pickle(
    run_id: str,
    submission_models: dict[str, list[Path]],
    feature_names: list[str],
    stacker: dict[str, Any],
    image: Image,
    path: Path,
) -> PickleRecord:
    """Pickle the predict function of a trained run: its model files read as strings."""
    strings = {
        column: [model.read_text(encoding="utf-8") for model in submission_models[column]]
        for column in stacker["columns"]
    }
    function = predictor.make_predict(
        strings, list(feature_names), list(stacker["columns"]), [float(w) for w in stacker["weights"]]
    )
    write_pickle(function, path)
    return PickleRecord(
        path=path,
        sha256=file_sha256(path),
        bytes=path.stat().st_size,
        python=image.python,
        docker_image=image.docker_image,
        trained_run_id=run_id,
        models=sum(len(texts) for texts in strings.values()),
    )


def record_in_manifest(slot_dir: Path, record: PickleRecord, check: dict[str, Any]) -> Manifest:
    """The pickle beside the manifest, and what its check found, recorded in the manifest."""
    manifest = read_manifest(slot_dir)
    entry = record.model_dump(mode="json") | {"path": record.path.name, "check": check}
    updated = manifest.model_copy(update={"model_upload": entry})
    write_manifest(slot_dir, updated)
    return updated
