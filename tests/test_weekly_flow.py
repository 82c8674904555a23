"""The weekly flow end to end on a real Prefect server (SQLite, started by the fixture)."""

import base64
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numerai_tools.submissions import validate_submission_numerai
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
)

from flows.weekly import weekly_flow
from numerflow.config import ConfigError
from numerflow.data.files import read_live
from numerflow.runs.manifest import latest_run, latest_slot_run, load_trained_run, read_manifest
from numerflow.train.predict import predict

pytestmark = pytest.mark.usefixtures("prefect_server")

ARTIFACT_KEYS = [
    "numerflow-run-summary",
    "numerflow-metrics",
    "numerflow-fold-metrics",
    "numerflow-validation-era-corr",
    "numerflow-oof-era-corr",
    "numerflow-submissions",
    "numerflow-run-plan",
    "numerflow-run-history",
]


def test_weekly_flow_trains_scores_and_writes_a_valid_submission(
    config_dir: Path, fast_overrides: dict, version_dir: Path
) -> None:
    overrides = fast_overrides | {"training.final_model": "all_labelled"}  # the shipped default
    state = weekly_flow(config_dir=str(config_dir), overrides=overrides, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()

    # The planted signal is found, by every base model and by the stack.
    assert list(result.slots) == ["main"] and result.slots["main"].validation_corr_mean > 0.05
    slot_dir = result.run_dir / "slots" / "main"
    manifest = read_manifest(slot_dir)
    for split in ("oof", "validation"):
        assert set(getattr(manifest.metrics.summary, split)) == {"target", "target_cyrusd_20", "stack"}
        assert all(m.mean > 0 for m in getattr(manifest.metrics.summary, split).values())
    assert len(manifest.metrics.per_fold) == 2 * 3  # targets x folds
    # every labelled validation era past the embargo is scored, by CORR and by Numerai's metrics
    validation = pd.read_parquet(version_dir / "validation.parquet", columns=["era", "data_type"])
    labelled = validation.loc[validation["data_type"] == "validation", "era"].astype(int)
    embargo = fast_overrides["training.folds.embargo_eras"]
    past = sorted(set(labelled[labelled > manifest.data.training_eras[1] + embargo]))
    assert manifest.data.validation_eras == past
    assert manifest.metrics.summary.validation["stack"].eras == len(past)
    scored = manifest.metrics.validation
    assert scored["bmc"].summary["stack"].eras == len(past)
    assert 0 < scored["mmc"].summary["stack"].eras < len(past)  # the meta model: recent eras only
    assert scored["fnc"].not_computed is None and scored["feature_exposure"].summary["stack"].mean > 0
    assert manifest.params["num_iterations"] == 60 and manifest.data.version == "v5.2"
    [recipe] = {Path(p).parts[1] for p in manifest.models["target"]}
    assert manifest.models["target"] == [f"models/{recipe}/target/fold_{k}.txt" for k in range(3)]
    work_dir = Path(fast_overrides["training.work_dir"])
    assert latest_run(work_dir) == result.run_dir and latest_slot_run(work_dir, "main") == slot_dir
    assert (result.run_dir / "plan.json").is_file()
    chart = (result.run_dir / manifest.chart).read_bytes()  # the validation chart beside the manifest
    assert manifest.chart == "slots/main/validation.png" and chart.startswith(b"\x89PNG")
    bins = manifest.data.bins  # binned once for the 6 models, by the loader the guard chose
    assert bins["built"] and bins["record"]["rows"] == manifest.data.training_rows
    assert bins["plan"]["loader"] == bins["record"]["loader"] == "arrow"

    [entry] = result.submission.slots
    assert result.submission.status == "dry-run" and entry.trained_run_id == result.run_id
    submission = pd.read_csv(entry.submission.path)
    live_ids = pd.read_parquet(version_dir / "live.parquet").index.to_series()
    validate_submission_numerai(live_ids.reset_index(drop=True), submission)
    assert entry.submission.rows == len(live_ids)

    effective = (result.run_dir / "program_output_params.yaml").read_text()
    assert "num_iterations: 60" in effective

    # The final model (training.final_model: all_labelled, the default): one model per target on
    # every labelled era of train and validation, and it is what predicted live.
    final = manifest.final_model
    assert manifest.submission_models == "final"
    assert final["models"] == {t: f"models/{recipe}/final/{t}.txt" for t in manifest.targets}
    train = pd.read_parquet(version_dir / "train.parquet", columns=["era"])
    assert final["rows_by_file"] == {"train.parquet": len(train), "validation.parquet": int(labelled.size)}
    assert final["rows"] == len(train) + labelled.size and final["eras_by_file"]["validation.parquet"] == [
        labelled.min(),
        labelled.max(),
        labelled.nunique(),
    ]
    assert {r["target"]: r["step"] for r in final["per_target"]} == dict.fromkeys(manifest.targets, "cpu")
    run = load_trained_run(slot_dir)
    live = read_live(version_dir / "live.parquet", manifest.features)
    submitted = pd.read_parquet(slot_dir / "live_local.parquet")
    finals, folds = predict(run.submission_models(), live.features), predict(run.models, live.features)
    assert np.allclose(submitted["target"].to_numpy(), finals["target"].to_numpy())
    assert not np.allclose(finals["target"].to_numpy(), folds["target"].to_numpy(), atol=1e-3)

    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=ARTIFACT_KEYS))
        )
        subflows = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]))
        )
    assert [f.name for f in subflows] and all(f.state.is_completed() for f in subflows)
    runs = {flow_run_id, *(f.id for f in subflows)}
    mine = {a.key for a in artifacts if a.flow_run_id in runs}
    assert mine == set(ARTIFACT_KEYS)
    summary = next(a for a in artifacts if a.key == "numerflow-run-summary" and a.flow_run_id == flow_run_id)
    assert result.run_id in summary.data and "validation CORR" in summary.data
    assert "BMC is measured against v52_lgbm_ender20" in summary.data
    assert f"(data:image/png;base64,{base64.b64encode(chart).decode()})" in summary.data
    history = next(a for a in artifacts if a.key == "numerflow-run-history" and a.flow_run_id == flow_run_id)
    assert history.data == f"No previous weekly runs in `{work_dir}` to compare this run with.\n"


def test_bad_override_fails_before_any_work(config_dir: Path, fast_overrides: dict) -> None:
    overrides = fast_overrides | {"training.folds.n_folds": 1}
    state = weekly_flow(config_dir=str(config_dir), overrides=overrides, return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, ConfigError)
    assert "override training.folds.n_folds: folds.n_folds" in str(error)
    assert not Path(fast_overrides["training.work_dir"]).exists()


def test_gpu_error_in_one_fold_falls_back_and_the_run_completes(
    config_dir: Path, fast_overrides: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulated: an 8 GiB card with 6 GiB free that LightGBM can use (`gpu.device: gpu`, since
    `auto` keeps data this small on the CPU), and a GPU out-of-memory error in fold 1 only. The
    other folds train on the GPU; fold 1 steps down to the CPU."""
    import lightgbm

    import numerflow.gpu.decision as gpu_decision
    import numerflow.train.fit as fit
    import tasks.gpu
    from numerflow.gpu.capability import Capability
    from numerflow.gpu.probe import probe_gpus
    from tests.fake_nvml import FakeNvml

    monkeypatch.setattr(
        tasks.gpu, "probe_gpus", lambda: probe_gpus(FakeNvml([("RTX 4060", 8, 6)]), visible=None)
    )
    monkeypatch.setattr(
        gpu_decision, "check_capability", lambda *args, **kwargs: Capability(ok=True, reason="sim")
    )
    real_fit_fold = fit.fit_fold

    def gpu_that_fails_on_fold_1(prepared, fold, target, params, seed, models_dir, on_progress=None):
        if params.device_type == "cpu":
            return real_fit_fold(prepared, fold, target, params, seed, models_dir, on_progress)
        if fold.index == 1:
            raise lightgbm.basic.LightGBMError("GPU out of memory (simulated)")
        on_cpu = params.model_copy(update={"device_type": "cpu", "gpu_device_id": None})
        result = real_fit_fold(prepared, fold, target, on_cpu, seed, models_dir, on_progress)
        return result.model_copy(update={"device_type": params.device_type})

    monkeypatch.setattr(fit, "fit_fold", gpu_that_fails_on_fold_1)
    overrides = fast_overrides | {
        "training.targets": ["target"],
        "program_input_params.gpu.device": "gpu",
        "training.final_model": "none",
    }
    state = weekly_flow(config_dir=str(config_dir), overrides=overrides, return_state=True)
    assert state.is_completed(), state.message
    manifest = read_manifest(state.result().run_dir / "slots" / "main")
    # final_model: none: no final models; live is the folds' mean, as before final models existed
    assert manifest.submission_models == "folds" and manifest.final_model is None
    assert not list(state.result().run_dir.glob("models/*/final"))
    assert load_trained_run(state.result().run_dir / "slots" / "main").submission_models() == {
        "target": [state.result().run_dir / p for p in manifest.models["target"]]
    }

    assert manifest.device.choice == "gpu" and "6.0 GiB free" in manifest.device.reason
    assert "needs about" in manifest.device.reason  # the VRAM estimate of the run's shape
    trained_on = {r["fold"]: r["step"] for r in manifest.fold_results}
    assert trained_on == {0: "gpu", 1: "cpu", 2: "gpu"}
    steps = [(d.fold, d.from_, d.to) for d in manifest.device.downgrades]
    assert steps == [(1, "gpu", "cpu")]
    assert all("out of memory" in d.error for d in manifest.device.downgrades)
    effective = (state.result().run_dir / "program_output_params.yaml").read_text()
    assert "choice: gpu" in effective and "device_type: gpu" in effective


def test_gpu_required_without_a_gpu_fails_before_training(
    config_dir: Path, fast_overrides: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks.gpu
    from numerflow.gpu.probe import probe_gpus
    from tests.fake_nvml import FakeNvml

    # Simulated: NVML finds no GPU, as here (on a GPU box, the real probe would find one).
    monkeypatch.setattr(tasks.gpu, "probe_gpus", lambda: probe_gpus(FakeNvml([]), visible=None))
    overrides = fast_overrides | {"program_input_params.gpu.required": True}
    state = weekly_flow(config_dir=str(config_dir), overrides=overrides, return_state=True)
    assert state.is_failed()
    error = str(state.result(raise_on_failure=False))
    assert "a GPU is required" in error and "gpu.required" in error
    assert not list(Path(fast_overrides["training.work_dir"]).glob("*/models"))
