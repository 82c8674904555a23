"""The run plan: config files, `--set` overrides and flow parameters resolved once, at the start
of a run, into one frozen, typed record of what the run will do.

The data version is resolved and every model slot has its own targets, features, LightGBM
parameters (from the active parameter file, its parameter set and its own changes), folds and
stacking. That plan is device-free: its training shape then sizes the one device decision,
which is applied to it (numerflow.runs.device): the data limits it imposes and each slot's
fallback ladder. Steps receive the plan or the part they need and never reload or patch the
configuration. The plan is written to the run folder and published as an artifact: what the
run really did.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from numerflow.config import ConfigError
from numerflow.config.models import (
    FeaturesConfig,
    FinalModel,
    FoldsConfig,
    LightGBMParams,
    Loader,
    NumeraiConfig,
    NumerflowConfig,
    ProgramOutputParams,
    ScaleOutConfig,
    SlotConfig,
    StackingKind,
    SubmitVia,
)
from numerflow.data.files import DataError, read_features_json, select_features
from numerflow.data.reference_files import reference_benchmark
from numerflow.gpu.decision import DeviceDecision, DevicePolicy
from numerflow.lgbpaths import lightgbm_folder
from numerflow.numerai.images import UnsupportedPython, image_for
from numerflow.runs.manifest import latest_slot_run
from numerflow.train.device import FallbackStep

DEFAULT_SLOT = "main"  # the one slot of a run that names no Numerai models: trained, never uploaded


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataPlan(Frozen):
    version: str
    version_dir: Path
    era_stride: int  # training eras
    validation_era_stride: int  # scored validation eras, independent of the training stride
    benchmark_model: str  # the validation_benchmark_models.parquet column BMC is measured against
    feature_metrics_eras: int | None  # FNC and feature exposure on the newest N validation eras
    row_limit: int | None
    loader: Loader
    bins_dir: Path


class SlotPlan(Frozen):
    """One model slot, fully resolved."""

    name: str
    submit_as: str | None  # the Numerai model name; None: never uploaded
    submit_via: SubmitVia = "predictions"
    model_id: str | None = None  # the Numerai model id of a model_upload slot
    targets: list[str]
    features: list[str]
    feature_source: str  # where the features came from, for people
    feature_config: FeaturesConfig  # what chose them, before the device decision's cut
    neutralisers: list[str]  # the features FNC and feature exposure are measured against
    neutraliser_set: str | None  # the feature set they are, or None: the slot's own features
    recipe_params: LightGBMParams  # the slot's parameters before the device decision
    ladder: list[FallbackStep] = []  # from the device decision: parameters, then fallbacks to the CPU
    folds: FoldsConfig
    stacking: StackingKind
    submission_path: Path

    @property
    def params(self) -> LightGBMParams:
        if not self.ladder:
            raise ValueError(f"slot {self.name}: the device is not decided yet (numerflow.runs.device)")
        return self.ladder[0].params

    def data_key(self) -> str:
        """Slots with the same key share one set of bins: same features, same dataset params."""
        return short_digest({"features": self.features, "dataset": self.params.dataset_params()})


class RunPlan(Frozen):
    data: DataPlan
    slots: list[SlotPlan]
    decision: DeviceDecision | None = None  # None until decided (numerflow.runs.device)
    device_policy: DevicePolicy
    final_model: FinalModel  # after validation: one model per target on every labelled era, or none
    params_source: str
    seed: int
    work_dir: Path
    numerai: NumeraiConfig
    scale_out: ScaleOutConfig
    output: ProgramOutputParams
    history_runs: int  # previous weekly runs the run-history artifact compares each slot with
    overrides: dict[str, Any]

    def slot(self, name: str) -> SlotPlan:
        return next(s for s in self.slots if s.name == name)


class SubmitSlot(Frozen):
    """A slot to submit for: its Numerai model and the trained run that predicts it."""

    name: str
    submit_as: str | None
    trained_dir: Path | None  # <run>/slots/<slot>; None: the slot has never been trained
    submission_path: Path
    submit_via: SubmitVia = "predictions"
    model_id: str | None = None

    @property
    def hosted(self) -> bool:
        """Numerai predicts it from an uploaded pickle: never sent a prediction upload."""
        return self.submit_via == "model_upload"


class SubmitPlan(Frozen):
    """What a submission needs: Numerai settings, where data and the ledger live, the slots."""

    numerai: NumeraiConfig
    work_dir: Path
    data_dir: Path
    slots: list[SubmitSlot]

    def submitting_models(self) -> list[str]:
        return [s.submit_as for s in self.slots if s.submit_as]

    def predicting_models(self) -> list[str]:
        """The models this machine uploads predictions for each round: the missed-round alert
        waits for theirs. Numerai predicts a model_upload slot's model itself; the hosted check
        watches that run instead."""
        return [s.submit_as for s in self.slots if s.submit_as and not s.hosted]


def submit_plan_for_round(config: NumerflowConfig, only: list[str] | None = None) -> SubmitPlan:
    """The per-round plan: every chosen slot with its latest trained run."""
    training = config.training
    chosen = select_slots(config, only)
    check_hosted_python(chosen)
    return SubmitPlan(
        numerai=training.numerai,
        work_dir=training.work_dir,
        data_dir=training.data.dir,
        slots=[
            SubmitSlot(
                name=slot.name,
                submit_as=slot.name if slot.submit else None,
                trained_dir=latest_slot_run(training.work_dir, slot.name),
                submission_path=submission_path(config, slot.name, len(chosen) > 1),
                submit_via=slot.submit_via,
                model_id=slot.model_id,
            )
            for slot in chosen
        ],
    )


def submit_plan_after_training(plan: RunPlan, trained: dict[str, Path]) -> SubmitPlan:
    """The weekly run's plan: the slots it trained, each with the run folder it just wrote."""
    return SubmitPlan(
        numerai=plan.numerai,
        work_dir=plan.work_dir,
        data_dir=plan.data.version_dir.parent,
        slots=[
            SubmitSlot(
                name=slot.name,
                submit_as=slot.submit_as,
                trained_dir=trained[slot.name],
                submission_path=slot.submission_path,
                submit_via=slot.submit_via,
                model_id=slot.model_id,
            )
            for slot in plan.slots
            if slot.name in trained
        ],
    )


def resolve_plan(
    config: NumerflowConfig,
    version: str,
    overrides: dict[str, Any] | None = None,
    only: list[str] | None = None,
) -> RunPlan:
    """The device-free plan for `config` on data `version` (resolved, on disk)."""
    training = config.training
    version_dir = training.data.dir / version
    features_json = read_features_json(version_dir)
    chosen = select_slots(config, only)
    check_hosted_python(chosen)
    slots = [_slot_plan(config, slot, features_json, several=len(chosen) > 1) for slot in chosen]
    return RunPlan(
        data=DataPlan(
            version=version,
            version_dir=version_dir,
            era_stride=training.data.era_stride,
            validation_era_stride=training.data.validation_era_stride,
            benchmark_model=training.scoring.benchmark_model or reference_benchmark(version),
            feature_metrics_eras=training.scoring.feature_metrics_eras,
            row_limit=training.data.row_limit,
            loader=training.data.loader,
            bins_dir=lightgbm_folder(training.bins_root(), "bins"),
        ),
        slots=slots,
        device_policy=DevicePolicy.of(config),
        final_model=training.final_model,
        params_source=training.params_source,
        seed=training.seed,
        work_dir=training.work_dir,
        numerai=training.numerai,
        scale_out=training.scale_out,
        output=config.program_output_params,
        history_runs=training.scoring.history_runs,
        overrides=dict(overrides or {}),
    )


def select_slots(config: NumerflowConfig, only: list[str] | None = None) -> list[SlotConfig]:
    """The configured slots (or the default slot), narrowed to `only` when given.

    A name in `only` that is not configured is a slot with the default recipe, so the old
    `models: [name]` parameter still means "submit as these models".
    """
    configured = config.training.models or [SlotConfig(name=DEFAULT_SLOT, submit=False)]
    if not only:
        return configured
    by_name = {slot.name: slot for slot in configured}
    return [by_name.get(name) or SlotConfig(name=name) for name in dict.fromkeys(only)]


def check_hosted_python(slots: list[SlotConfig]) -> None:
    """model_upload slots need a Python Numerai runs: refused before any training, not after."""
    hosted = [slot.name for slot in slots if slot.submit_via == "model_upload"]
    if not hosted:
        return
    try:
        image_for()
    except UnsupportedPython as exc:
        raise ConfigError(f"model slot(s) {hosted}: submit_via: model_upload: {exc}") from None


def submission_path(config: NumerflowConfig, slot: str, several: bool) -> Path:
    """The configured path for a single slot; `<stem>_<slot><suffix>` beside it for several."""
    path = config.training.submission.path
    return path.with_name(f"{path.stem}_{slot}{path.suffix}") if several else path


def param_changes(params: LightGBMParams, base: LightGBMParams) -> dict[str, Any]:
    """The parameters whose values differ from `base`."""
    base_values = base.model_dump()
    return {k: v for k, v in params.model_dump().items() if k not in base_values or v != base_values[k]}


def _slot_plan(
    config: NumerflowConfig, slot: SlotConfig, features_json: dict[str, object], several: bool
) -> SlotPlan:
    features_config = features_config_of(config.features, slot)
    try:
        features = select_features(features_json, features_config)
    except DataError as exc:
        raise DataError(f"model slot {slot.name}: {exc}") from None
    fnc_set = config.training.scoring.fnc_feature_set
    sets = features_json["feature_sets"]
    assert isinstance(sets, dict)
    # Numerai's FNC uses fncv3_features: a fraction of all features, so a tenth of the cost an
    # era. Measured against that set when the data has it, else against the slot's own features.
    neutraliser_set = fnc_set if fnc_set and sets.get(fnc_set) else None
    return SlotPlan(
        name=slot.name,
        submit_as=slot.name if slot.submit else None,
        submit_via=slot.submit_via,
        model_id=slot.model_id,
        targets=slot.targets or config.training.targets,
        features=features,
        feature_source=describe_features(features_config, len(features)),
        feature_config=features_config,
        neutralisers=list(sets[neutraliser_set]) if neutraliser_set else features,
        neutraliser_set=neutraliser_set,
        recipe_params=config.slot_params(slot),
        folds=slot.folds or config.training.folds,
        stacking=slot.stacking or config.training.stacking,
        submission_path=submission_path(config, slot.name, several),
    )


def features_config_of(defaults: FeaturesConfig, slot: SlotConfig) -> FeaturesConfig:
    if slot.feature_set is None and slot.features is None:
        chosen = defaults
    else:
        chosen = FeaturesConfig(feature_set=slot.feature_set, features=slot.features)
    max_features = slot.max_features if slot.max_features is not None else defaults.max_features
    return chosen.model_copy(update={"max_features": max_features})


def describe_features(features: FeaturesConfig, count: int) -> str:
    source = f"feature_set {features.feature_set}" if features.feature_set else "an explicit list"
    limit = f", first {features.max_features}" if features.max_features is not None else ""
    return f"{source}{limit}: {count} features"


def short_digest(payload: dict[str, Any]) -> str:
    return hashlib.blake2b(json.dumps(payload, sort_keys=True).encode(), digest_size=6).hexdigest()


def plan_record(plan: RunPlan) -> dict[str, Any]:
    """The plan as people read it (plan.json, the run-plan artifact)."""
    slot_inputs = {"feature_config", "neutraliser_set"}  # what the decision's cut starts from
    return plan.model_dump(
        mode="json",
        exclude={
            "decision": {"ladder"},
            "device_policy": True,
            "slots": {i: slot_inputs for i in range(len(plan.slots))},
        },
    )
