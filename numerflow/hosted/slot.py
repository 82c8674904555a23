"""A `model_upload` slot's submission: its pickle built, checked in Numerai's runtime against
numerflow's own predictions for the same live file, then uploaded once per trained run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from numerflow.hosted.build import PICKLE_NAME, PickleRecord, build_pickle, record_in_manifest
from numerflow.hosted.check import CheckResult, check_pickle
from numerflow.hosted.limits import Limits
from numerflow.hosted.runtime import ensure_runtime
from numerflow.hosted.upload import PickleUpload, already_uploaded, upload_pickle_once
from numerflow.numerai import ledger
from numerflow.numerai.client import NumeraiClient
from numerflow.numerai.images import image_for
from numerflow.numerai.uploads import UploadOutcome
from numerflow.runs.manifest import TrainedRun
from numerflow.submit.file import make_submission
from numerflow.submit.live import predict_live

BENCHMARKS_FILE = "live_benchmark_models.parquet"  # Numerai passes it as the second argument


@dataclass(frozen=True)
class Checked:
    record: PickleRecord
    check: CheckResult


def submitted_predictions(submission_path: Path) -> pd.Series:
    """The predictions `numerflow submit` wrote for the slot, indexed by id."""
    return pd.read_csv(submission_path, index_col="id", dtype={"id": str})["prediction"]


def build_and_check(
    run: TrainedRun,
    live_file: Path,
    submission_path: Path,
    out_dir: Path | None = None,
    limits: Limits | None = None,
    cache_dir: Path | None = None,
) -> Checked:
    """Build the run's pickle and check it on `live_file`; raises `PickleRefused` (or
    `UnsupportedPython`) before anything is uploaded. A pickle in the slot's own folder is
    recorded in its manifest once it passed."""
    image = image_for()
    runtime = ensure_runtime(image, cache_dir)
    path = (out_dir or run.slot_dir) / PICKLE_NAME
    record = build_pickle(run.run_id, run.submission_models(), run.feature_names, run.stacker, image, path)
    check = check_pickle(
        path, runtime, live_file, submitted_predictions(submission_path), live_file.parent / BENCHMARKS_FILE,
        limits,
    )  # fmt: skip
    if out_dir is None:
        record_in_manifest(run.slot_dir, record, check.model_dump(mode="json"))
    return Checked(record, check)


def submit_hosted(
    client: NumeraiClient | None,
    work_dir: Path,
    run: TrainedRun,
    model: str,
    model_id: str,
    live_file: Path,
    submission_path: Path,
    force: bool,
) -> UploadOutcome:
    """The slot's pickle uploaded for `model` (`client` None: built and checked only)."""
    previous = ledger.model_uploaded(work_dir, model, run.run_id)
    if client is not None and previous and not force:
        return already_uploaded(previous)  # nothing to build
    checked = build_and_check(run, live_file, submission_path)
    if client is None:
        return UploadOutcome(
            model=model, status="dry-run", detail=f"would upload {checked.record.path} ({_figures(checked)})"
        )
    request = PickleUpload(
        model=model,
        model_id=model_id,
        trained_run_id=run.run_id,
        path=checked.record.path,
        sha256=checked.record.sha256,
        docker_image=checked.record.docker_image,
        data_version=run.data_version,
    )
    return upload_pickle_once(client, work_dir, request, force)


def _figures(checked: Checked) -> str:
    check = checked.check
    return f"checked in {check.seconds:.1f} s, max |diff| {check.max_abs_diff:.2g}"


def newest_live_file(version_dir: Path) -> Path:
    """The newest live file of a data version here (a round's `live_<round>.parquet` or `live.parquet`)."""
    found = sorted(version_dir.glob("live*.parquet"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(
            f"{version_dir}: no live file to check the pickle on: run `numerflow submit --dry-run` "
            "(it downloads the round's live file) or put Numerai's live.parquet there"
        )
    return found[-1]


def pickle_slot(
    run: TrainedRun, data_dir: Path, out_dir: Path | None, limits: Limits | None = None
) -> Checked:
    """`numerflow pickle`: the slot's pickle built and checked on the newest local live file,
    against numerflow's own predictions for it (the predictions `numerflow submit` would upload)."""
    live_file = newest_live_file(data_dir / run.data_version)
    scratch = out_dir or run.slot_dir
    live = predict_live(run, live_file, scratch / "live_pickle_check.parquet")
    own = make_submission(live, scratch / "live_pickle_check.csv")
    return build_and_check(run, live_file, own.path, out_dir, limits)
