"""Run directories and their slot manifests: what a run trained, on what, and how it scored.

Layout of `<work_dir>/<run_id>/`:
    plan.json                    the resolved run plan, written before training
    program_output_params.yaml   the effective parameters (`output.run_file`)
    prepared/<data key>/         training rows binned once per feature set
    models/<recipe>/<target>/    fold_<k>.txt LightGBM models and fold_<k>_oof.parquet predictions
    models/<recipe>/final/<target>.txt   final models (all labelled eras), when trained
    slots/<slot>/                one folder per model slot:
        oof.parquet              out-of-fold predictions of every base model and the stack
        validation.parquet       validation predictions
        validation.png           the validation chart
        live_r<round>.parquet    live predictions (`live_local.parquet` without a round)
        model_upload.pkl         the pickle built for Numerai (model_upload slots)
        manifest.json            what was trained, on what, and how it scored; written once scored
`<work_dir>/latest/<slot>` names the slot's newest trained run and `<work_dir>/LATEST` the
newest run; both are written only after the manifest.
"""

from __future__ import annotations

import secrets
import subprocess
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from numerflow.io import write_json_atomic, write_text_atomic
from numerflow.score.results import Evaluation, MetricScores, SplitScores

LATEST_POINTER = "LATEST"
LATEST_DIR = "latest"  # one pointer file per model slot
SLOTS_DIR = "slots"  # <run>/slots/<slot>/: manifest, predictions and scores of each slot
CHART_FILE = "validation.png"  # the slot's validation chart, beside its manifest


class _Part(BaseModel):
    # A manifest rewritten (adding the model-upload record) keeps what it stored: keys written by
    # another version of numerflow stay, and fields it did not have are not added.
    model_config = ConfigDict(extra="allow")

    @model_serializer(mode="wrap")
    def _as_stored(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        fields = type(self).model_fields  # the set fields, and keys of other versions (extras)
        stored = {fields[name].alias or name if name in fields else name for name in self.model_fields_set}
        return {key: value for key, value in handler(self).items() if key in stored}


class DataRecord(_Part):
    """The data a slot trained and was scored on; older manifests may have only the version."""

    version: str
    dir: str | None = None
    era_stride: int | None = None
    row_limit: int | None = None
    training_rows: int | None = None
    bins: dict[str, Any] | None = None  # the bins cache record (built or reused, by which loader)
    training_eras: list[int] | None = None  # first, last, count
    validation_eras: list[int] | None = None


class Downgrade(_Part):
    """One fold's step down the device ladder after a GPU error."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, serialize_by_alias=True)

    target: str
    fold: int
    from_: str = Field(alias="from")
    to: str
    error: str


class DeviceRecord(_Part):
    """What the run trained on: the device decision, why, what NVML saw, and every fold's step down."""

    choice: str = Field(validation_alias=AliasChoices("choice", "tier"))  # older manifests: "tier"
    reason: str
    device_type: str
    # As recorded: these snapshots follow the GPU models of their numerflow version.
    capability: dict[str, Any] | None = None
    probe: dict[str, Any] = Field(default_factory=dict)
    downgrades: list[Downgrade] = Field(default_factory=list)


class StoredMetric(MetricScores):
    """A metric's summary as the manifest keeps it: its per-era rows are in the artifacts."""

    per_era: list[dict[str, Any]] = Field(default_factory=list, exclude=True)


class SlotMetrics(_Part):
    """How the slot scored: CORR per split, per fold, and Numerai's other validation metrics
    (summaries; the per-era rows are in the run's artifacts)."""

    summary: SplitScores = Field(default_factory=SplitScores)
    per_fold: list[dict[str, Any]] = Field(default_factory=list)
    validation: dict[str, StoredMetric] = Field(default_factory=dict)

    @classmethod
    def of(cls, evaluation: Evaluation) -> SlotMetrics:
        """The evaluation as its slot's manifest keeps it (per-era rows only in the artifacts)."""
        metrics = evaluation.validation_metrics
        validation = {name: metric.model_dump(exclude={"per_era"}) for name, metric in metrics.items()}
        return cls(summary=evaluation.summary, per_fold=evaluation.per_fold, validation=validation)


class Manifest(BaseModel):
    run_id: str
    slot: str | None = None  # the model slot; its model paths are relative to the run folder
    submit_as: str | None = None
    created_at: str
    finished_at: str | None = None
    code_version: str
    data: DataRecord
    features: list[str]
    targets: list[str]
    params: dict[str, Any]
    device: DeviceRecord
    folds: list[dict[str, Any]]
    fold_results: list[dict[str, Any]] = Field(default_factory=list)
    models: dict[str, list[str]] = Field(default_factory=dict)
    stacker: dict[str, Any] | None = None
    metrics: SlotMetrics = Field(default_factory=SlotMetrics)
    chart: str | None = None  # the validation chart (PNG), relative to the run folder
    # Which models predict live: the folds' mean per target, or the final model per target
    # (`final_model` then records its paths, rows, eras, seconds and device). Manifests written
    # before final models existed have neither field: folds.
    submission_models: Literal["folds", "final"] = "folds"
    final_model: dict[str, Any] | None = None
    model_upload: dict[str, Any] | None = None  # the pickle built for Numerai (file beside it, hash, image)


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@cache
def code_version() -> str:
    """Package version plus the git commit when run from a checkout (`+dirty` if modified)."""
    try:
        base = version("numerflow")
    except PackageNotFoundError:
        base = "unknown"
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return base
    return f"{base}+g{commit}{'.dirty' if dirty else ''}" if commit else base


def write_manifest(run_dir: Path, manifest: Manifest) -> Path:
    return write_json_atomic(run_dir / "manifest.json", manifest.model_dump(mode="json"))


def read_manifest(run_dir: Path) -> Manifest:
    return Manifest.model_validate_json((run_dir / "manifest.json").read_text(encoding="utf-8"))


def mark_latest(work_dir: Path, run_dir: Path, slot: str) -> None:
    """`<work_dir>/latest/<slot>` names the slot's newest trained run; `LATEST` the newest run."""
    write_text_atomic(work_dir / LATEST_DIR / slot, run_dir.name + "\n")
    write_text_atomic(work_dir / LATEST_POINTER, run_dir.name + "\n")


class TrainedRun(BaseModel):
    """What prediction needs from a finished training run of one slot."""

    run_id: str
    slot: str
    slot_dir: Path
    data_version: str
    feature_names: list[str]
    models: dict[str, list[Path]]  # the fold models of each target
    final_models: dict[str, Path] = Field(default_factory=dict)  # one per target, when it submits with them
    stacker: dict[str, Any]

    def submission_models(self) -> dict[str, list[Path]]:
        """The models whose predictions are stacked for live: each target's final model, or its folds."""
        return {t: [p] for t, p in self.final_models.items()} if self.final_models else self.models


class ManifestError(ValueError):
    """A slot's manifest is missing, damaged or not one of a trained slot."""


def load_trained_run(slot_dir: Path) -> TrainedRun:
    path = slot_dir / "manifest.json"
    try:
        manifest = read_manifest(slot_dir)
        if manifest.stacker is None or not manifest.models or manifest.slot is None:
            raise ValueError("not a trained model slot: no models or stacker")
        run_dir = slot_dir.parents[1]
        final = manifest.final_model if manifest.submission_models == "final" else None
        return TrainedRun(
            run_id=manifest.run_id,
            slot=manifest.slot,
            slot_dir=slot_dir,
            data_version=manifest.data.version,
            feature_names=manifest.features,
            models={t: [run_dir / p for p in paths] for t, paths in manifest.models.items()},
            final_models={t: run_dir / p for t, p in final["models"].items()} if final else {},
            stacker=manifest.stacker,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:  # ValidationError is a ValueError
        raise ManifestError(
            f"{path}: not the manifest of a trained model slot ({manifest_problem(exc)}); "
            f"{manifest_fix(slot_dir.name)}"
        ) from None


def manifest_fix(slot: str) -> str:
    """What to do about a slot whose latest manifest cannot be used."""
    return (
        f"train again (`numerflow run`), or write an earlier run's folder name into latest/{slot} "
        "in the work directory"
    )


def manifest_problem(exc: Exception) -> str:
    """What is wrong with a manifest that cannot be used, in one line."""
    if isinstance(exc, OSError):
        return str(exc.strerror)
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        return f"not a readable manifest ({exc.error_count()} error(s); {where}: {first['msg']})"
    if isinstance(exc, KeyError):
        return f"no {exc} in it"
    return str(exc)


def latest_run(work_dir: Path) -> Path | None:
    """The newest run that trained at least one slot, or None when none has finished yet."""
    return _pointed(work_dir, work_dir / LATEST_POINTER)


def latest_slot_run(work_dir: Path, slot: str) -> Path | None:
    """The folder of the slot's newest trained run, or None when it has never been trained."""
    run_dir = _pointed(work_dir, work_dir / LATEST_DIR / slot)
    return run_dir / SLOTS_DIR / slot if run_dir is not None else None


def _pointed(work_dir: Path, pointer: Path) -> Path | None:
    if not pointer.is_file():
        return None
    run_dir = work_dir / pointer.read_text(encoding="utf-8").strip()
    return run_dir if (run_dir / SLOTS_DIR).is_dir() else None
