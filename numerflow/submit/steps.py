"""The submission side as plain functions: data from Numerai, live predictions, the validated
submission file and idempotent uploads. Prefect tasks in `tasks/numerai.py` wrap these."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel

from numerflow.config.models import DataConfig, NumeraiConfig
from numerflow.data.files import DataError, read_live, read_live_ids
from numerflow.io import atomic_path
from numerflow.numerai.client import NumeraiClient, Timeouts, newest_data_version
from numerflow.numerai.download import DownloadResult, Expectation, expectation_for, fetch
from numerflow.numerai.errors import NumeraiError
from numerflow.numerai.uploads import UploadOutcome, UploadRequest, upload_once
from numerflow.progress import FileProgress, ProgressReport
from numerflow.runs.manifest import TrainedRun
from numerflow.score.references import SCORING_FILES
from numerflow.score.stacking import Stacker, era_rank
from numerflow.submit.file import SubmissionError, build_submission, file_sha256, write_submission
from numerflow.train.predict import predict

TRAINING_FILES = ("features.json", "train.parquet", "validation.parquet")
VERSION_DIR = re.compile(r"^v\d+\.\d+$")


class LivePredictions(BaseModel):
    path: Path
    rows: int
    live_file: Path  # the live data they predict: a submission must hold exactly its ids


class SubmissionRecord(BaseModel):
    path: Path
    rows: int
    sha256: str


class SlotSubmission(BaseModel):
    """What one model slot submitted: the file from its trained run, or why it could not."""

    slot: str
    submit_as: str | None = None
    trained_run_id: str | None = None
    submission: SubmissionRecord | None = None
    error: str | None = None


class SubmissionOutcome(BaseModel):
    status: Literal["submitted", "dry-run", "no-open-round", "upload-failed", "slot-failed"]
    round: int | None = None
    slots: list[SlotSubmission] = []
    uploads: list[UploadOutcome] = []
    message: str = ""

    def failed_slots(self) -> list[SlotSubmission]:
        return [s for s in self.slots if s.error is not None]


def make_client(settings: NumeraiConfig, public_id: str | None, secret_key: str | None) -> NumeraiClient:
    return NumeraiClient(
        public_id=public_id,
        secret_key=secret_key,
        api_url=settings.api_url,
        timeouts=Timeouts(settings.connect_timeout_s, settings.read_timeout_s),
        retry_budget_seconds=settings.retry_budget_s,
    )


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


def live_path(version_dir: Path, round_number: int | None) -> Path:
    """Round-specific live file when the round is known; the plain live.parquet otherwise."""
    return version_dir / (f"live_{round_number}.parquet" if round_number is not None else "live.parquet")


def ensure_live_data(
    version_dir: Path,
    client: NumeraiClient,
    round_number: int | None,
    feature_names: list[str],
    on_progress: ProgressReport | None = None,
) -> DownloadResult:
    dest = live_path(version_dir, round_number)
    return fetch(
        client,
        f"{version_dir.name}/live.parquet",
        dest,
        expectation_for("live.parquet", feature_names),
        round_number,
        on_progress=on_progress,
    )


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


def make_submission(live: LivePredictions, target_path: Path) -> SubmissionRecord:
    """Validate against the live file's ids and write the CSV atomically to `target_path` (or
    beside it, when another program holds it open: numerflow.submit.file.write_submission)."""
    frame = pd.read_parquet(live.path)
    submission = build_submission(frame.index.to_numpy().astype(str), frame["stack"].to_numpy())
    try:
        path = write_submission(read_live_ids(live.live_file), submission, target_path)
    except SubmissionError as exc:
        raise SubmissionError(
            f"{live.path}: not a valid submission for the live file {live.live_file} ({exc}); "
            f"{target_path} was left as it was: run the round again to predict that live file"
        ) from None
    return SubmissionRecord(path=path, rows=len(frame), sha256=file_sha256(path))


def resolve_model_ids(models: list[str], known: dict[str, str], client: NumeraiClient) -> dict[str, str]:
    """Model ids from the credentials block, checked against (and completed from) the account.

    Asking the account first also checks the API key, so bad credentials fail in seconds,
    before any prediction work.
    """
    account = client.model_ids()
    ids = {m: known.get(m) or account.get(m) for m in models}
    missing = [m for m, model_id in ids.items() if not model_id]
    if missing:
        raise NumeraiError(
            f"no model id for {missing}: add them to the credentials block "
            "(`numerflow setup credentials --model NAME=ID`) or check the model names in training.yaml"
        )
    foreign = [m for m, model_id in ids.items() if model_id not in account.values()]
    if foreign:
        raise NumeraiError(f"the model ids of {foreign} do not belong to this Numerai account")
    return {m: str(model_id) for m, model_id in ids.items()}


def upload_for_models(
    work_dir: Path,
    client: NumeraiClient | None,
    model_ids: dict[str, str],
    submission: SubmissionRecord,
    round_number: int | None,
    trained_run_id: str,
    force: bool,
    dry_run: bool,
) -> list[UploadOutcome]:
    """One upload per model and round from a trained run (`numerflow.numerai.uploads`).

    Failures are returned, not raised, so one model's failure does not stop the others.
    """
    outcomes = []
    for model, model_id in model_ids.items():
        if dry_run or client is None or round_number is None:
            outcomes.append(
                UploadOutcome(model=model, status="dry-run", detail=f"would upload {submission.path}")
            )
            continue
        request = UploadRequest(
            round_number, model, model_id, trained_run_id, submission.path, submission.rows
        )
        outcomes.append(upload_once(client, work_dir, request, force))
    return outcomes
