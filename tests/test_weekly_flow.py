"""The weekly flow end to end on a real Prefect server (SQLite, started by the fixture)."""

from pathlib import Path

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
from numerflow.runs import latest_run, read_manifest

pytestmark = pytest.mark.usefixtures("prefect_server")

ARTIFACT_KEYS = [
    "numerflow-run-summary",
    "numerflow-metrics",
    "numerflow-fold-metrics",
    "numerflow-validation-era-corr",
    "numerflow-oof-era-corr",
    "numerflow-submissions",
]


def test_weekly_flow_trains_scores_and_writes_a_valid_submission(
    config_dir: Path, fast_overrides: dict, version_dir: Path
) -> None:
    state = weekly_flow(config_dir=str(config_dir), overrides=fast_overrides, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()

    # The planted signal is found, by every base model and by the stack.
    assert result.validation_corr_mean > 0.05
    manifest = read_manifest(result.run_dir)
    for split in ("oof", "validation"):
        assert set(manifest.metrics["summary"][split]) == {"target", "target_cyrusd_20", "stack"}
        assert all(m["mean"] > 0 for m in manifest.metrics["summary"][split].values())
    assert len(manifest.metrics["per_fold"]) == 2 * 3  # targets x folds
    assert manifest.params["n_estimators"] == 60 and manifest.data["version"] == "v5.2"
    assert manifest.models["target"] == [f"models/target/fold_{k}.txt" for k in range(3)]
    assert latest_run(Path(fast_overrides["training.work_dir"])) == result.run_dir

    assert result.submission.status == "dry-run" and result.submission.trained_run_id == result.run_id
    submission = pd.read_csv(result.submission.submission.path)
    live_ids = pd.read_parquet(version_dir / "live.parquet").index.to_series()
    validate_submission_numerai(live_ids.reset_index(drop=True), submission)
    assert result.submission.submission.rows == len(live_ids)

    effective = (result.run_dir / "program_output_params.yaml").read_text()
    assert "n_estimators: 60" in effective
    assert (result.run_dir / "live_local.parquet").is_file()

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


def test_bad_override_fails_before_any_work(config_dir: Path, fast_overrides: dict) -> None:
    overrides = fast_overrides | {"training.folds.n_folds": 1}
    state = weekly_flow(config_dir=str(config_dir), overrides=overrides, return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, ConfigError)
    assert "override training.folds.n_folds: folds.n_folds" in str(error)
    assert not Path(fast_overrides["training.work_dir"]).exists()
