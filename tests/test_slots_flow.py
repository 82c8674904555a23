"""Several Numerai model slots from one weekly run, against the loopback fake Numerai API and a
real Prefect server: one set of bins, different predictions to each model id, and a slot that
fails leaves the others' uploads in place."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import numerflow.train.fit as fit
from flows.submit import submit_flow
from flows.weekly import weekly_flow
from numerflow.numerai.blocks import NumeraiCredentials
from numerflow.runs.manifest import read_manifest
from tests.fake_numerai import FakeNumerai

SECRET, PUBLIC, BLOCK = "S3CRET-slots", "PUB-slots", "numerai-slots"
MODELS = {
    "slot_a": "aaaaaaaa-0000-0000-0000-000000000001",
    "slot_b": "bbbbbbbb-0000-0000-0000-000000000002",
    "slot_c": "cccccccc-0000-0000-0000-000000000003",
}
SLOT_A = {"name": "slot_a", "targets": ["target"]}
SLOT_B = {
    "name": "slot_b",
    "targets": ["target_cyrusd_20", "target"],
    "params": {"learning_rate": 0.05, "max_depth": 3},
    "stacking": "ridge",
}
SLOT_C = {"name": "slot_c", "targets": ["target_teager2b_20"]}  # the one made to fail


@pytest.fixture
def fake(version_dir: Path) -> Iterator[FakeNumerai]:
    server = FakeNumerai(public_id=PUBLIC, secret_key=SECRET, models=dict(MODELS))
    server.add_dataset_dir(version_dir)
    server.round_files[("v5.2/live.parquet", 1001)] = (version_dir / "live.parquet").read_bytes()
    server.start()
    NumeraiCredentials(public_id=PUBLIC, secret_key=SECRET, model_ids={}).save(BLOCK, overwrite=True)
    yield server
    server.stop()


def _overrides(root: Path, fake: FakeNumerai, slots: list[dict]) -> dict:
    return {
        "training.data.dir": str(root / "data"),
        "training.data.era_stride": 2,
        "training.work_dir": str(root / "runs"),
        "training.submission.path": str(root / "submissions" / "live.csv"),
        "training.folds.n_folds": 3,
        "training.folds.embargo_eras": 4,
        "training.models": slots,
        "training.numerai.download": True,
        "training.numerai.upload": True,
        "training.numerai.api_url": fake.api_url,
        "training.numerai.credentials_block": BLOCK,
        "training.numerai.retry_budget_s": 5,
        "params.n_estimators": 30,
        "params.learning_rate": 0.1,
    }


def _uploaded(fake: FakeNumerai) -> dict[str, pd.DataFrame]:
    names = {model_id: name for name, model_id in MODELS.items()}
    return {names[s["model_id"]]: pd.read_csv(io.BytesIO(s["body"])) for s in fake.submissions}


@pytest.mark.usefixtures("prefect_server")
def test_two_slots_train_in_one_run_and_upload_their_own_predictions(
    tmp_path: Path, fake: FakeNumerai
) -> None:
    overrides = _overrides(tmp_path, fake, [SLOT_A, SLOT_B])
    state = weekly_flow(overrides=overrides, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert set(result.slots) == {"slot_a", "slot_b"}

    bins = {p.parent.name for p in (tmp_path / "runs" / "bins").rglob("bins.json")}
    manifests = {name: read_manifest(result.run_dir / "slots" / name) for name in result.slots}
    assert manifests["slot_b"].targets == ["target_cyrusd_20", "target"]
    assert manifests["slot_b"].params["max_depth"] == 3 and manifests["slot_a"].params["max_depth"] == 5
    assert manifests["slot_b"].stacker["kind"] == "ridge"
    # same features: the folds' rows binned once for both slots, and the final model's once
    [fold_bins] = {m.data.bins["record"]["key"] for m in manifests.values()}
    [final_bins] = {m.final_model["bins"]["record"]["key"] for m in manifests.values()}
    assert bins == {fold_bins, final_bins}
    # each slot submits its own recipe's final models (the shipped final_model: all_labelled)
    finals = {name: m.final_model["models"] for name, m in manifests.items()}
    assert set(finals["slot_a"]) == {"target"} and set(finals["slot_b"]) == {"target_cyrusd_20", "target"}
    assert finals["slot_a"]["target"] != finals["slot_b"]["target"]  # different parameters

    uploaded = _uploaded(fake)
    assert set(uploaded) == {"slot_a", "slot_b"}  # each to its own model id, once
    a, b = uploaded["slot_a"], uploaded["slot_b"]
    assert a["id"].tolist() == b["id"].tolist() and not a["prediction"].equals(b["prediction"])
    assert (tmp_path / "submissions" / "live_slot_a.csv").is_file()

    # the per-round flow submits one slot on its own, from its latest run, once per round
    outcome = submit_flow(overrides=overrides, models=["slot_b"], force=True)
    assert [(u.model, u.status) for u in outcome.uploads] == [("slot_b", "uploaded")]
    assert len(fake.submissions) == 3


@pytest.mark.usefixtures("prefect_server")
def test_a_failing_slot_leaves_the_others_uploads_and_is_named(
    tmp_path: Path, fake: FakeNumerai, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fit_fold = fit.fit_fold

    def broken_for_slot_c(prepared, fold, target, params, seed, models_dir, on_progress=None):
        if target == "target_teager2b_20":
            raise RuntimeError("disk full (simulated)")
        return real_fit_fold(prepared, fold, target, params, seed, models_dir, on_progress)

    monkeypatch.setattr(fit, "fit_fold", broken_for_slot_c)
    state = weekly_flow(overrides=_overrides(tmp_path, fake, [SLOT_A, SLOT_C]), return_state=True)
    assert state.is_failed()
    assert "slot_c" in state.message and "disk full" in state.message and "slot_a" not in state.message
    assert set(_uploaded(fake)) == {"slot_a"}  # the healthy slot still submitted
    runs = tmp_path / "runs"
    assert (runs / "latest" / "slot_a").is_file() and not (runs / "latest" / "slot_c").exists()
