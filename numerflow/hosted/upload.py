"""One model upload per (trained run, model): the pickle sent to Numerai, which then predicts
every round with it on its own machines.

    lock (model) -> ledger check -> image of the local Python, data version -> upload URL
    -> PUT (status checked, retried) -> create -> ledger entry

The image is always named: numerapi sends none by default and Numerai's default image may run
another Python than the one that wrote the pickle, which cannot load it (numerai/numerapi#117).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from numerflow.numerai import ledger
from numerflow.numerai.client import NumeraiClient
from numerflow.numerai.errors import NumeraiError
from numerflow.numerai.locks import held
from numerflow.numerai.uploads import UPLOAD_STEPS, UploadOutcome, logger

T = TypeVar("T")


@dataclass(frozen=True)
class PickleUpload:
    model: str
    model_id: str
    trained_run_id: str
    path: Path
    sha256: str
    docker_image: str  # "Python 3.11": the image of the Python that wrote the pickle
    data_version: str  # the version the slot trained on


def model_upload_lock_path(work_dir: Path, model: str) -> Path:
    return work_dir / "locks" / f"model-upload-{model}.lock"


def upload_pickle_once(
    client: NumeraiClient, work_dir: Path, request: PickleUpload, force: bool = False
) -> UploadOutcome:
    """Upload unless the ledger has this (model, trained run); failures are returned, not raised."""
    what = f"model upload for {request.model}"
    wait = UPLOAD_STEPS * client.retry_budget_seconds + 60
    try:
        with held(model_upload_lock_path(work_dir, request.model), wait, what):
            previous = ledger.model_uploaded(work_dir, request.model, request.trained_run_id)
            if previous and not force:
                return already_uploaded(previous)
            return _upload(client, work_dir, request)
    except NumeraiError as exc:
        logger.error("%s failed: %s", what, exc)
        return UploadOutcome(model=request.model, status="failed", detail=str(exc))


def already_uploaded(previous: ledger.ModelUploadEntry) -> UploadOutcome:
    return UploadOutcome(
        model=previous.model,
        status="skipped",
        submission_id=previous.upload_id,
        detail=f"pickle of run {previous.trained_run_id} uploaded at {previous.recorded_at}; "
        "Numerai predicts each round with it",
    )


def _upload(client: NumeraiClient, work_dir: Path, request: PickleUpload) -> UploadOutcome:
    attempts: Counter[str] = Counter()

    def step(name: str, action: Callable[[], T]) -> T:
        def attempt() -> T:
            attempts[name] += 1
            return action()

        return client.retrying(attempt, f"{name} ({request.path.name})")

    image_id = _named(client.docker_images(), request.docker_image, "image")
    version_id = _named(client.pickle_data_versions(), request.data_version, "data version")
    data = request.path.read_bytes()
    target = step("upload-url", lambda: client.pickle_upload_target(request.path, request.model_id))
    step("put", lambda: client.put_file(target.url, data))
    # A create whose answer was lost is sent again: it names the same file, so at worst Numerai
    # records the same pickle twice for the model, never a different one.
    upload_id = step(
        "create", lambda: client.create_pickle_upload(target.filename, request.model_id, version_id, image_id)
    )
    ledger.append_model_upload(
        work_dir,
        model=request.model,
        trained_run_id=request.trained_run_id,
        upload_id=upload_id,
        server_filename=target.filename,
        sha256=request.sha256,
        bytes=len(data),
        docker_image=request.docker_image,
        data_version=request.data_version,
        attempts=dict(attempts),
    )
    return UploadOutcome(
        model=request.model,
        status="uploaded",
        submission_id=upload_id,
        detail=f"pickle of run {request.trained_run_id} ({request.docker_image}, {request.data_version})",
    )


def _named(listed: dict[str, str], name: str, what: str) -> str:
    if name not in listed:
        raise NumeraiError(
            f"Numerai lists no model-upload {what} {name!r} (it lists {sorted(listed)}): the pickle only "
            f"runs in the {what} it was built for; build it with a Python or data version Numerai runs"
        )
    return listed[name]
