"""The final model's rows (train + validation eras, binned in one pass), the memory guard and
the device decision for its shape. The weekly flow tests check it end to end."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from numerflow.config import load_config
from numerflow.config.models import LightGBMParams, ProgramInputParams
from numerflow.data.memory import MemoryBudgetError
from numerflow.gpu.capability import Capability
from numerflow.gpu.decision import decide, decision_for
from numerflow.gpu.probe import probe_gpus
from numerflow.gpu.vram import TrainingShape
from numerflow.runs.device import apply_decision
from numerflow.runs.final import check_final_data
from numerflow.runs.fits import recipe_key
from numerflow.runs.folders import RunPaths
from numerflow.runs.plan import resolve_plan
from numerflow.train.prepare import bin_rows
from tests.fake_nvml import FakeNvml

NO_GPU = probe_gpus(FakeNvml([]), visible=None)


def _plan(config_dir: Path, synth_root: Path, **overrides: object):
    config = load_config(config_dir, {"training.data.dir": str(synth_root), **overrides})
    plan = resolve_plan(config, "v5.2", overrides)
    return apply_decision(plan, decision_for(plan.device_policy, NO_GPU))


def _labelled(version_dir: Path, name: str) -> pd.DataFrame:
    frame = pd.read_parquet(version_dir / name, columns=["era", "target"])
    frame["era"] = frame["era"].astype(int)
    return frame[frame["era"].isin(frame.loc[frame["target"].notna(), "era"])]


def test_final_rows_are_every_labelled_era_of_both_files(
    config_dir: Path, synth_root: Path, version_dir: Path
) -> None:
    plan = _plan(config_dir, synth_root, **{"training.data.era_stride": 1})
    final = check_final_data(plan, plan.slots, NO_GPU)
    train, validation = (_labelled(version_dir, n) for n in ("train.parquet", "validation.parquet"))
    assert final.part_rows == {"train.parquet": len(train), "validation.parquet": len(validation)}
    assert len(validation) < len(pd.read_parquet(version_dir / "validation.parquet", columns=["era"]))
    assert final.shape.rows == len(train) + len(validation)  # no embargo: every labelled era
    assert [p.eras for p in final.parts] == [
        sorted(train["era"].unique().tolist()),
        sorted(validation["era"].unique().tolist()),
    ]
    assert final.memory.loader == "arrow" and final.decision.choice == "cpu"

    # era_stride thins both files together, anchored on the newest labelled era
    strided = check_final_data(
        _plan(config_dir, synth_root, **{"training.data.era_stride": 4}), plan.slots, NO_GPU
    )
    eras = sorted(strided.parts[0].eras + strided.parts[1].eras)
    assert eras[-1] == validation["era"].max() and set(pd.Series(eras).diff().dropna()) == {4}


def test_a_final_model_too_big_for_memory_stops_naming_the_settings(
    config_dir: Path, synth_root: Path
) -> None:
    plan = _plan(config_dir, synth_root)
    with pytest.raises(MemoryBudgetError) as error:
        check_final_data(plan, plan.slots, NO_GPU, available=(200 * 2**20, "simulated 200 MiB"))
    message = str(error.value)
    assert "final model on all labelled eras" in message and "simulated 200 MiB" in message
    assert "final_model: none" in message and "data.row_limit" in message and "feature_set" in message


def test_the_full_labelled_set_trains_on_the_cpu_when_an_8gb_card_cannot_hold_it() -> None:
    """6.6M x 2,376 (train + validation, v5.2) needs about 8.4 GiB of VRAM: an 8 GB card with
    7.5 GiB free cannot hold it, and no cut applies to the final model: the CPU trains it."""
    probe = probe_gpus(FakeNvml([("RTX 4060", 8, 7.5)]), visible=None)
    ok = Capability(ok=True, reason="simulated")
    labelled = TrainingShape(rows=6_600_000, features=2_376)
    decision = decide(ProgramInputParams(), probe, ok, False, labelled, can_reduce=False)
    assert decision.choice == "cpu" and decision.params.device_type == "cpu"
    assert "needs about 8.4 GiB" in decision.reason and "fixed here" in decision.reason
    train_only = decide(
        ProgramInputParams(), probe, ok, False, labelled.model_copy(update={"rows": 2_700_000})
    )
    assert train_only.choice == "gpu"  # the training file alone fits that card


def test_both_loaders_bin_two_files_in_one_pass_identically(
    config_dir: Path, synth_root: Path, tmp_path: Path
) -> None:
    plan = _plan(config_dir, synth_root, **{"training.data.era_stride": 1})
    final = check_final_data(plan, plan.slots, NO_GPU)
    params = LightGBMParams()
    features = plan.slots[0].features
    digests = set()
    for loader in ("arrow", "stream"):
        prepared = bin_rows(
            final.parts,
            features,
            ["target"],
            params,
            tmp_path / loader,
            tmp_path / loader / "bins",
            loader=loader,
        )
        assert prepared.bins.record.loader == loader and prepared.bins.record.rows == final.shape.rows
        meta = pd.read_parquet(prepared.meta_path)
        assert len(meta) == final.shape.rows and meta["era"].max() > final.parts[0].eras[-1]  # both files
        digests.add(prepared.bins.record.digest)
    assert len(digests) == 1


def test_slots_with_one_recipe_share_their_final_models(
    config_dir: Path, synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numerflow.runs.final as final_step

    trained = []
    real = final_step.fit_final_on_ladder

    def counted(prepared, target, *args, **kwargs):
        trained.append(target)
        return real(prepared, target, *args, **kwargs)

    monkeypatch.setattr(final_step, "fit_final_on_ladder", counted)
    plan = _plan(
        config_dir,
        synth_root,
        **{
            "training.models": ["a", "b", {"name": "c", "params": {"learning_rate": 0.2}}],
            "params.n_estimators": 5,
        },
    )
    final = check_final_data(plan, plan.slots, NO_GPU)
    paths = RunPaths(run_id="r", run_dir=tmp_path / "run")
    models = final_step.train_final_models(
        plan, final, plan.slots, tmp_path / "prepared", paths.models_dir, lambda slot: recipe_key(plan, slot)
    )
    assert models["a"].models == models["b"].models != models["c"].models
    assert trained == plan.slots[0].targets * 2  # a (and b with it), then c
    assert all(p.is_file() and p.parent.name == "final" for m in models.values() for p in m.models.values())
