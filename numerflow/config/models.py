"""Typed models of the YAML files under `config/`.

Every model forbids unknown keys, so a typo in a user's file fails loudly instead of being
ignored. Bounds follow what LightGBM and Numerai accept.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from numerflow.config.lightgbm_names import (
    ParamError,
    canonical_name,
    canonical_params,
    check_numerflow_keys,
    check_with_lightgbm,
    dataset_keys,
    physical_cores,
)

DATA_VERSION_PATTERN = r"^(v\d+\.\d+|latest)$"
Loader = Literal["auto", "arrow", "stream"]  # how parquet becomes binned LightGBM data
TARGET_PATTERN = re.compile(r"^target(_[a-z0-9]+_(20|60))?$")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(StrictModel):
    """Where the Numerai dataset lives and how much of it to use."""

    version: str = Field(
        "latest", pattern=DATA_VERSION_PATTERN, description="vX.Y, or latest: the newest listed"
    )
    dir: Path = Field(
        Path("data"), description="folder holding one subfolder per data version (data/v5.2/...)"
    )
    era_stride: int = Field(4, ge=1, le=52, description="train on every Nth era (1 = all eras)")
    validation_era_stride: int = Field(
        1, ge=1, le=52, description="score on every Nth labelled validation era (1 = all of them)"
    )
    row_limit: int | None = Field(None, ge=100, description="cap on training rows (last resort)")
    loader: Loader = Field(
        "auto", description="how parquet becomes binned LightGBM data: auto picks by size and free memory"
    )
    bins_dir: Path | None = Field(None, description="cache of binned Datasets; default <work_dir>/bins")

    def version_dir(self) -> Path:
        return self.dir / self.version


class FoldsConfig(StrictModel):
    """Era folds: contiguous blocks of eras, each validated by models trained on the others."""

    n_folds: int = Field(4, ge=2, le=20, description="folds (contiguous blocks of eras)")
    embargo_eras: int = Field(
        8, ge=0, le=52, description="eras dropped from training on each side of a validation block"
    )


class LiveScoresConfig(StrictModel):
    """Numerai's live scores of each submitted model, kept beside its validation record."""

    fetch_rounds: int = Field(
        40,
        ge=1,
        le=200,
        description="recent rounds whose daily scores are read back after each submission (rounds "
        "resolve about a month after they open, so 40 covers every open one and the newest resolved)",
    )
    window: int = Field(
        20,
        ge=2,
        le=200,
        description="resolved rounds the decay alert averages live CORR and MMC over",
    )
    alert_sigma: float = Field(
        2.0,
        gt=0,
        le=10,
        description="decay alert when the window's mean live score is more than this many standard "
        "errors (validation per-era std / sqrt(window)) below the validation mean",
    )


class ScoringConfig(StrictModel):
    """How validation predictions are judged, besides CORR against the main target."""

    benchmark_model: str | None = Field(
        None,
        min_length=1,
        description="column of validation_benchmark_models.parquet BMC is measured against; "
        "null: the data version's reference benchmark (v52_lgbm_ender20 for v5.2)",
    )
    fnc_feature_set: str | None = Field(
        "fncv3_features",
        min_length=1,
        description="features.json set FNC and feature exposure neutralise against (Numerai's FNC "
        "uses fncv3_features); null, or a set the data lacks: the slot's own features",
    )
    feature_metrics_eras: int | None = Field(
        200,
        ge=1,
        description="FNC and feature exposure on the newest N validation eras (each era neutralises "
        "against every feature: about 0.5 s an era at 42 features, 35 s at 2,376); null: every era",
    )
    history_runs: int = Field(
        10,
        ge=1,
        le=200,
        description="previous weekly runs each slot is compared with in the numerflow-run-history "
        "artifact (validation CORR, MMC, BMC, parameters hash and data version, run over run)",
    )
    live: LiveScoresConfig = Field(
        default_factory=LiveScoresConfig, description="live Numerai scores and the decay alert"
    )


class SubmissionConfig(StrictModel):
    """Where the submission CSV is written."""

    path: Path = Field(
        Path("submissions/live_predictions.csv"),
        description="the id,prediction CSV; with several slots, live_predictions_<slot>.csv beside it",
    )


class NumeraiConfig(StrictModel):
    """How numerflow talks to Numerai. Secrets live in the Prefect block, never here."""

    download: bool = Field(False, description="fetch data from Numerai before training")
    upload: bool = Field(False, description="upload submissions; false records a dry run")
    credentials_block: str = Field(
        "numerai", pattern=r"^[a-z0-9][a-z0-9-]*$", description="name of the numerai-credentials block"
    )
    api_url: str | None = Field(
        None, pattern=r"^https?://", description="another Numerai endpoint (a proxy); NUMERAI_API_URL wins"
    )
    connect_timeout_s: float = Field(10, gt=0, le=120, description="seconds to connect, every network call")
    read_timeout_s: float = Field(60, gt=0, le=1800, description="seconds to wait for an answer")
    retry_budget_s: float = Field(
        300, ge=0, le=3600, description="seconds transient failures are retried within, with backoff"
    )


class ScaleOutConfig(StrictModel):
    """Where fold x target tasks run: here, one at a time, or on an existing Dask cluster."""

    dask_address: str | None = Field(
        None,
        pattern=r"^(tcp|tls|ucx|inproc|ws|wss)://\S+$",
        description="Dask scheduler address, e.g. tcp://10.0.0.5:8786; null: train here",
    )
    task_resources: dict[str, float] = Field(
        default_factory=dict,
        description="Dask worker resources each fold task holds, e.g. {GPU: 1} (workers: --resources GPU=1)",
    )

    @field_validator("task_resources")
    @classmethod
    def _positive(cls, resources: dict[str, float]) -> dict[str, float]:
        bad = [name for name, amount in resources.items() if amount <= 0]
        if bad:
            raise ValueError(f"resource amounts must be positive: {bad}")
        return resources


StackingKind = Literal["mean", "ridge", "none"]
FinalModel = Literal["all_labelled", "none"]
SubmitVia = Literal["predictions", "model_upload"]  # who predicts each round: this PC, or Numerai
MODEL_NAME_PATTERN = r"^[A-Za-z0-9_]+$"  # Numerai model names: letters, digits, underscores
MODEL_ID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


def check_param_overrides(params: dict[str, Any]) -> dict[str, Any]:
    """A partial set of LightGBM parameters under LightGBM's canonical names, each checked by
    LightGBM on top of the defaults."""
    canonical = canonical_params(params)
    try:
        LightGBMParams.model_validate(canonical)
    except ValidationError as exc:
        raise param_error(exc) from None
    return canonical


def param_error(exc: ValidationError) -> ParamError:
    """The first error of validating LightGBMParams, naming its key."""
    error = exc.errors()[0]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, ParamError):
        return cause
    key = ".".join(str(part) for part in error["loc"]) or "params"
    return ParamError(key, f"{error['msg']} (got {error.get('input')!r})")


def parameter_name(key: str) -> str | None:
    """LightGBM's canonical name of `key`; numerflow's own fields are canonical names already."""
    return key if key in LightGBMParams.model_fields else canonical_name(key)


def no_device_keys(params: dict[str, Any]) -> dict[str, Any]:
    check_numerflow_keys(params, device_keys=True)
    return params


ParamChanges = Annotated[dict[str, Any], AfterValidator(check_param_overrides)]


class SlotConfig(StrictModel):
    """One Numerai model slot: its name on Numerai and the recipe that differs from the defaults.

    Every field left out takes the run's default (training.yaml targets/folds/stacking,
    features.yaml, the active parameter file), so `- my_model` alone is the default recipe.
    """

    name: str = Field(pattern=MODEL_NAME_PATTERN, description="the Numerai model name it submits as")
    targets: list[str] | None = Field(None, min_length=1, description="default: training.yaml targets")
    feature_set: str | None = Field(None, description="default: features.yaml")
    features: list[str] | None = Field(None, description="explicit feature columns instead of a set")
    max_features: int | None = Field(None, ge=1, description="keep at most this many features")
    param_set: str | None = Field(None, description="a named set under param_sets: in the parameter file")
    params: Annotated[ParamChanges, AfterValidator(no_device_keys)] = Field(
        default_factory=dict,
        description="LightGBM parameters for this slot only (any LightGBM name or alias)",
    )
    folds: FoldsConfig | None = Field(None, description="default: training.yaml folds")
    stacking: StackingKind | None = Field(None, description="default: training.yaml stacking")
    submit: bool = Field(True, description="false: train and score it, never upload it")
    submit_via: SubmitVia = Field(
        "predictions",
        description="predictions: upload each round's predictions from this PC; model_upload: upload a "
        "checked pickle after each weekly run and let Numerai predict every round on its machines",
    )
    model_id: str | None = Field(
        None, pattern=MODEL_ID_PATTERN, description="the Numerai model id (required by model_upload)"
    )

    @field_validator("targets")
    @classmethod
    def _targets(cls, targets: list[str] | None) -> list[str] | None:
        return None if targets is None else check_targets(targets)

    @model_validator(mode="after")
    def _one_feature_source(self) -> SlotConfig:
        if self.feature_set is not None and self.features is not None:
            raise ValueError("set at most one of 'feature_set' and 'features'")
        return self

    @model_validator(mode="after")
    def _hosted_needs_model_id(self) -> SlotConfig:
        if self.submit_via == "model_upload" and self.model_id is None:
            raise ValueError(
                f"model slot {self.name}: submit_via: model_upload needs model_id: the model's id from "
                "numer.ai -> Models (Numerai runs the uploaded pickle for that model)"
            )
        return self


def check_targets(targets: list[str]) -> list[str]:
    bad = [t for t in targets if not TARGET_PATTERN.match(t)]
    if bad:
        raise ValueError(f"{bad} are not Numerai target names (expected 'target' or 'target_<name>_20|60')")
    if len(set(targets)) != len(targets):
        raise ValueError("targets are listed twice")
    return targets


class RetentionConfig(StrictModel):
    """What `numerflow prune` and the end of each weekly run remove from the disk."""

    weekly_runs: int = Field(
        12,
        ge=1,
        le=1000,
        description="run folders kept per model slot, newest first; the run a slot's latest pointer "
        "names and runs the ledger names for a round not yet resolved are always kept",
    )
    live_files: int = Field(
        10, ge=1, le=10_000, description="newest live_<round>.parquet files kept per data version"
    )
    data_versions: bool = Field(
        False,
        description="also remove data version folders other than the one in use and the newest",
    )


class TrainingConfig(StrictModel):
    """`config/training.yaml`."""

    data: DataConfig = DataConfig()
    targets: list[str] = Field(
        default_factory=lambda: ["target"],
        min_length=1,
        description="the first is the one everything is scored against",
    )
    folds: FoldsConfig = FoldsConfig()
    stacking: StackingKind = Field(
        "mean", description="how base models combine: mean, ridge (cross-fitted), none"
    )
    params_source: Literal["program", "manual"] = Field(
        "program",
        description="program: program_input_params.yaml; manual: model_params.yaml as is",
    )
    work_dir: Path = Field(Path("runs"), description="run folders, the ledger, latest pointers and caches")
    submission: SubmissionConfig = SubmissionConfig()
    scoring: ScoringConfig = ScoringConfig()
    numerai: NumeraiConfig = NumeraiConfig()
    scale_out: ScaleOutConfig = ScaleOutConfig()
    final_model: FinalModel = Field(
        "all_labelled",
        description="all_labelled: after validation, train one model per target on every labelled era "
        "of train and validation (era_stride and row_limit apply; the embargo does not) with the slot's "
        "parameters and n_estimators (folds train a fixed tree count: there is no early stopping), and "
        "predict live with it, stacked as the folds are; none: live is the mean of the fold models",
    )
    models: list[SlotConfig] = Field(
        default_factory=list, description="Numerai model slots: a name, or a name with its own recipe"
    )
    seed: int = Field(42, ge=0, description="seeds every model, trained with deterministic: true")
    retention: RetentionConfig = RetentionConfig()

    def bins_root(self) -> Path:
        return self.data.bins_dir or self.work_dir / "bins"

    @field_validator("targets")
    @classmethod
    def _targets_are_numerai_names(cls, targets: list[str]) -> list[str]:
        return check_targets(targets)

    @model_validator(mode="after")
    def _history_is_kept(self) -> TrainingConfig:
        if self.retention.weekly_runs <= self.scoring.history_runs:
            raise ValueError(
                f"retention.weekly_runs ({self.retention.weekly_runs}) must exceed scoring.history_runs "
                f"({self.scoring.history_runs}): the run history reads the previous runs' manifests; "
                f"raise weekly_runs to {self.scoring.history_runs + 1} or lower history_runs"
            )
        return self

    @field_validator("models", mode="before")
    @classmethod
    def _names_are_slots(cls, models: Any) -> Any:
        # `- my_model` is the short form of `- name: my_model` (the default recipe)
        if isinstance(models, list):
            return [{"name": m} if isinstance(m, str) else m for m in models]
        return models

    @field_validator("models")
    @classmethod
    def _model_names_unique(cls, models: list[SlotConfig]) -> list[SlotConfig]:
        names = [m.name for m in models]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"model names are listed twice: {twice}")
        return models


class FeaturesConfig(StrictModel):
    """`config/features.yaml`: a named feature set from features.json or an explicit list."""

    feature_set: str | None = Field(
        "small", description="a set of features.json: small, medium, all, or a group"
    )
    features: list[str] | None = Field(None, description="explicit feature_* columns instead of a set")
    max_features: int | None = Field(None, ge=1, description="keep at most this many features")

    @model_validator(mode="after")
    def _one_source(self) -> FeaturesConfig:
        if (self.feature_set is None) == (self.features is None):
            raise ValueError("set exactly one of 'feature_set' and 'features'")
        if self.features is not None:
            bad = [f for f in self.features if not f.startswith("feature_")]
            if bad:
                raise ValueError(f"features must be 'feature_*' columns, got {bad[:5]}")
        return self


DEFAULT_OBJECTIVE = "regression"


class LightGBMParams(StrictModel):
    """LightGBM's parameters under LightGBM's canonical names. Any parameter of the installed
    LightGBM is accepted by its name or an alias, and checked by LightGBM itself; the fields below
    are the ones numerflow reads or gives its own default (Numerai's tutorial model)."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    num_iterations: int = Field(2000, ge=1, le=200_000, description="trees (n_estimators)")
    learning_rate: float = Field(0.01, gt=0, le=1, description="shrinkage of each tree")
    max_depth: int = Field(5, ge=-1, le=64, description="tree depth limit (-1: none)")
    num_leaves: int = Field(31, ge=2, le=131_072, description="leaves a tree")
    feature_fraction: float = Field(0.1, gt=0, le=1, description="colsample_bytree")
    bagging_fraction: float = Field(1.0, gt=0, le=1, description="subsample; below 1, bagging_freq is 1")
    objective: str = Field(DEFAULT_OBJECTIVE, description="a regression objective (any LightGBM alias)")
    min_data_in_leaf: int = Field(20, ge=1, description="min_child_samples; part of the bins' cache key")
    max_bin: int = Field(255, ge=5, le=1023, description="bins a feature (Numerai's features take 5 values)")
    bin_construct_sample_cnt: int = Field(20_000, ge=1000, description="rows sampled to find the bin edges")
    num_threads: int = Field(
        0, ge=0, description="0: the training machine's physical cores (LightGBM's own 0 is the logical ones)"
    )
    force_col_wise: bool = Field(
        True, description="column-wise histograms: about 1 byte a cell less than row-wise, 10-20% slower"
    )
    device_type: Literal["cpu", "gpu", "cuda"] = Field(
        "cpu", description="set by the GPU decision (gpu.device)"
    )
    gpu_platform_id: int | None = Field(None, ge=0, description="OpenCL platform; set by the GPU decision")
    gpu_device_id: int | None = Field(None, ge=0, description="OpenCL/CUDA device; set by the GPU decision")
    gpu_use_dp: bool = Field(False, description="double precision on the GPU (slower, more memory)")

    @model_validator(mode="before")
    @classmethod
    def _canonical(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        params = canonical_params(data, known=frozenset(cls.model_fields))
        check_numerflow_keys(params, device_keys=False)
        return params

    @model_validator(mode="after")
    def _lightgbm_takes_them(self) -> LightGBMParams:
        # The fields are bounded at least as tightly as LightGBM bounds them, so LightGBM (whose
        # import takes a second or more) is asked only about the other parameters and objectives.
        suspects = [*(self.model_extra or {}), *(["objective"] * (self.objective != DEFAULT_OBJECTIVE))]
        if suspects:
            check_with_lightgbm(self.model_dump(exclude_none=True), suspects)
        return self

    def to_lightgbm(self, seed: int) -> dict[str, object]:
        """Parameters in the form `lightgbm.train` takes (rounds are passed separately)."""
        params = self.model_dump(exclude={"num_iterations"}, exclude_none=True)
        if self.device_type == "cpu":
            params.pop("gpu_use_dp")
        params.setdefault("bagging_freq", 1 if self.bagging_fraction < 1 else 0)
        params.setdefault("verbosity", -1)
        params.update(num_threads=self.num_threads or physical_cores(), seed=seed, deterministic=True)
        return params

    def dataset_params(self) -> dict[str, object]:
        """The subset that shapes a binned Dataset; must match when a saved Dataset is reused."""
        return {**dataset_keys(self.model_dump(exclude_none=True)), "verbosity": -1}


class GpuConfig(StrictModel):
    """How the GPU is used (numerflow.gpu.decision decides, from a VRAM estimate of the data)."""

    device: Literal["auto", "cpu", "gpu", "cuda"] = Field(
        "auto",
        description="auto: the OpenCL learner for folds of at least min_gpu_cells, else the CPU; "
        "gpu: the OpenCL learner (the PyPI wheel) whenever it works; cuda: a CUDA build (Linux); cpu",
    )
    required: bool = Field(False, description="fail before training when no usable GPU (or GPU_REQUIRED=1)")
    device_index: int | None = Field(None, ge=0, description="which NVML card; default: most free memory")
    opencl_platform: str | None = Field(
        None, min_length=1, description="OpenCL platform: its index or part of its name; default NVIDIA's"
    )
    min_gpu_cells: float | None = Field(
        None, ge=0, description="auto's break-even in fold rows x features; null: calibrated, else built-in"
    )
    when_too_big: Literal["reduce", "cpu"] = Field(
        "reduce", description="a fold the VRAM cannot hold: fewer rows/features that fit, or the CPU"
    )
    params: ParamChanges = Field(
        default_factory=dict, description="LightGBM parameters for GPU training (any LightGBM name or alias)"
    )

    @field_validator("params")
    @classmethod
    def _device_is_decided(cls, params: dict[str, Any]) -> dict[str, Any]:
        return no_device_keys(params)


class ProgramInputParams(StrictModel):
    """`config/program_input_params.yaml`: the parameters the automated program trains with,
    and how the GPU is used."""

    params: LightGBMParams = LightGBMParams()
    param_sets: dict[str, Annotated[ParamChanges, AfterValidator(no_device_keys)]] = Field(
        default_factory=dict, description="named changes to params that model slots refer to"
    )
    gpu: GpuConfig = GpuConfig()

    @field_validator("params")
    @classmethod
    def _device_is_decided(cls, params: LightGBMParams) -> LightGBMParams:
        no_device_keys({key: True for key in params.model_fields_set})
        return params

    @model_validator(mode="before")
    @classmethod
    def _retired_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "tiers" in data:
            raise ValueError(
                "tiers: retired; the GPU is now sized by a VRAM estimate of the data (see `numerflow gpu`). "
                "Delete `tiers:`; pin GPU-only LightGBM parameters under gpu.params"
            )
        if isinstance(data, dict) and isinstance(data.get("gpu"), dict) and "learner" in data["gpu"]:
            raise ValueError("gpu.learner: renamed; use gpu.device: auto | gpu | cuda | cpu")
        return data


class ModelParams(StrictModel):
    """`config/model_params.yaml`: static defaults for the manual path (`params_source: manual`)."""

    params: LightGBMParams = LightGBMParams()
    param_sets: dict[str, ParamChanges] = Field(
        default_factory=dict, description="named changes to params that model slots refer to"
    )


class ProgramOutputParams(StrictModel):
    """`config/program_output_params.yaml`: where each run's effective parameters are written."""

    run_file: str = Field(
        "program_output_params.yaml",
        pattern=r"^[\w.-]+\.ya?ml$",
        description="written inside every run folder",
    )
    latest_file: Path | None = Field(
        Path("latest_output_params.yaml"),
        description="copy for the newest run, relative to work_dir; null: none",
    )


CRON_PATTERN = r"^\S+ \S+ \S+ \S+ \S+$"


class ScheduleConfig(StrictModel):
    """When a deployment runs."""

    cron: str = Field(pattern=CRON_PATTERN, description="minute hour day-of-month month day-of-week")
    timezone: str = Field("UTC", description="time zone of the cron, e.g. UTC, Europe/London")
    active: bool = Field(True, description="false: deployed without an active schedule")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, timezone: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{timezone!r} is not a known time zone (e.g. UTC, Europe/London)") from None
        return timezone


class RoundScheduleConfig(ScheduleConfig):
    """When the per-round deployment runs, and how long it waits for a late round."""

    wait_for_round_minutes: int = Field(
        30, ge=0, le=45, description="keep checking this long for the round to open"
    )
    poll_seconds: float = Field(30, ge=1, le=600, description="while waiting, check this often")
    hosted_check_minutes: float = Field(
        45,
        ge=1,
        le=50,  # the per-round flow stops 50 minutes after it starts (ROUND_FLOW_TIMEOUT_SECONDS)
        description="model_upload slots: alert when Numerai's run of the pickle for the "
        "open round failed, or has not succeeded this long after the round opened",
    )


class DeploymentsConfig(StrictModel):
    """`config/deployments.yaml`: where and when the flows run."""

    work_pool: str = Field(
        "numerflow-gpu", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Prefect process work pool"
    )
    concurrency: int = Field(1, ge=1, le=16, description="flow runs at a time on the pool (GPU jobs)")
    cuda_visible_devices: str | None = Field("0", description="GPU(s) the flows see; null leaves it unset")
    weekly: ScheduleConfig = ScheduleConfig(cron="0 16 * * 0")
    round: RoundScheduleConfig = RoundScheduleConfig(cron="5 12 * * 2-6")


HEARTBEAT_URL_PATTERN = r"^https?://[^\s?#]+$"  # pings append /start and /fail to the path


class HeartbeatConfig(StrictModel):
    """Ping URLs of an external dead man's switch (healthchecks.io form), one per kind of run."""

    round: str | None = Field(
        None, pattern=HEARTBEAT_URL_PATTERN, description="check pinged by each per-round run"
    )
    weekly: str | None = Field(
        None, pattern=HEARTBEAT_URL_PATTERN, description="check pinged by each weekly run"
    )
    timeout_s: float = Field(5, gt=0, le=30, description="a ping never holds a run up longer than this")


class AlertsConfig(StrictModel):
    """`config/alerts.yaml`: where alerts go and when a round counts as missed."""

    block: str | None = Field(
        None,
        pattern=r"^[a-z0-9-]+/[a-z0-9][a-z0-9-]*$",
        description="notification block as <block type>/<name>, e.g. slack-webhook/numerflow-alerts",
    )
    ui_url: str | None = Field(
        None, pattern=r"^https?://", description="Prefect UI for links; null: the one PREFECT_API_URL serves"
    )
    missed_round_after_minutes: float = Field(
        55, ge=0.5, le=1500, description="alert when no upload is accepted this long after a round starts"
    )
    zombie_after_minutes: float = Field(
        10, ge=0.5, le=1440, description="a running flow without a heartbeat this long is marked Crashed"
    )
    heartbeat: HeartbeatConfig = Field(
        default_factory=HeartbeatConfig,
        description="external monitor pinged at each run's start, success and failure",
    )


class NumerflowConfig(StrictModel):
    """All of `config/`, validated together."""

    training: TrainingConfig
    features: FeaturesConfig
    program_input_params: ProgramInputParams
    model_params: ModelParams
    program_output_params: ProgramOutputParams
    deployments: DeploymentsConfig
    alerts: AlertsConfig

    def parameter_file(self) -> ProgramInputParams | ModelParams:
        """The active parameter source: program_input_params.yaml or model_params.yaml."""
        return self.program_input_params if self.training.params_source == "program" else self.model_params

    def effective_params(self) -> LightGBMParams:
        return self.parameter_file().params.model_copy()

    def slot_params(self, slot: SlotConfig) -> LightGBMParams:
        """The active parameter file's params, then the slot's parameter set, then its own changes."""
        source = self.parameter_file()
        changes = {**(source.param_sets[slot.param_set] if slot.param_set else {}), **slot.params}
        return LightGBMParams.model_validate({**source.params.model_dump(), **changes})

    @model_validator(mode="after")
    def _param_sets_exist(self) -> NumerflowConfig:
        known = self.parameter_file().param_sets
        for slot in self.training.models:
            if slot.param_set is not None and slot.param_set not in known:
                raise ValueError(
                    f"training.yaml: models: {slot.name}: param_set {slot.param_set!r} is not under "
                    f"param_sets: in {self.training.params_source}'s parameter file "
                    f"(known: {sorted(known) or 'none'})"
                )
            try:
                self.slot_params(slot)  # each place was checked alone; LightGBM checks them together
            except ValidationError as exc:
                raise ValueError(
                    f"training.yaml: models: {slot.name}: its parameters together: {param_error(exc)}"
                ) from None
        return self
