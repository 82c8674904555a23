"""The run plan: config, overrides and flow parameters resolved once into model slots."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from numerflow.config import ConfigError, load_config
from numerflow.config.models import ProgramInputParams
from numerflow.gpu.capability import Capability
from numerflow.gpu.decision import decide, decision_for
from numerflow.gpu.probe import probe_gpus
from numerflow.gpu.shape import shape_for
from numerflow.runs.device import apply_decision
from numerflow.runs.fits import data_groups, plan_fits
from numerflow.runs.folders import RunPaths
from numerflow.runs.plan import DEFAULT_SLOT, resolve_plan, submit_plan_for_round
from tests.fake_nvml import FakeNvml


def _plan(config_dir: Path, synth_root: Path, overrides: dict | None = None, only: list[str] | None = None):
    config = load_config(config_dir, {"training.data.dir": str(synth_root), **(overrides or {})})
    plan = resolve_plan(config, "v5.2", overrides, only)
    return apply_decision(plan, decision_for(plan.device_policy, probe_gpus(FakeNvml([]), visible=None)))


def _write_training(config_dir: Path, **changes: object) -> None:
    path = config_dir / "training.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")


def _write_param_sets(config_dir: Path, **param_sets: dict) -> None:
    path = config_dir / "program_input_params.yaml"
    program = yaml.safe_load(path.read_text(encoding="utf-8"))
    program["param_sets"] = param_sets
    path.write_text(yaml.safe_dump(program), encoding="utf-8")


def test_old_single_model_files_are_one_slot(config_dir: Path, synth_root: Path) -> None:
    plan = _plan(config_dir, synth_root)
    config = load_config(config_dir)
    [slot] = plan.slots
    assert slot.name == DEFAULT_SLOT and slot.submit_as is None  # no models: trained, never uploaded
    assert slot.targets == config.training.targets and slot.stacking == config.training.stacking
    assert slot.params == config.effective_params()  # no GPU: the file's parameters as written
    assert slot.submission_path == config.training.submission.path

    _write_training(config_dir, models=["my_model"])
    [named] = _plan(config_dir, synth_root).slots
    assert named.name == named.submit_as == "my_model"
    assert named.model_dump(exclude={"name", "submit_as"}) == slot.model_dump(exclude={"name", "submit_as"})


def test_slots_resolve_their_own_recipe(config_dir: Path, synth_root: Path) -> None:
    _write_param_sets(config_dir, deep={"max_depth": 8, "num_leaves": 255})
    _write_training(
        config_dir,
        models=[
            "plain",
            {
                "name": "deep_cyrus",
                "targets": ["target_cyrusd_20"],
                "param_set": "deep",
                "params": {"learning_rate": 0.05},
                "feature_set": "all",
                "stacking": "none",
                "folds": {"n_folds": 3, "embargo_eras": 2},
            },
        ],
    )
    plan = _plan(config_dir, synth_root)
    plain, deep = plan.slots
    assert deep.targets == ["target_cyrusd_20"] and deep.stacking == "none" and deep.folds.n_folds == 3
    assert (deep.params.max_depth, deep.params.num_leaves, deep.params.learning_rate) == (8, 255, 0.05)
    assert plain.params.max_depth == 5 and plain.params.learning_rate == 0.01
    assert len(deep.features) > len(plain.features)  # all vs small
    # several slots: one submission file each, beside the configured one
    assert plain.submission_path.name == "live_predictions_plain.csv"
    assert deep.submission_path.name == "live_predictions_deep_cyrus.csv"
    assert len(data_groups(plan)) == 2  # different features: binned separately


def test_identical_recipes_share_bins_and_fold_models(config_dir: Path, synth_root: Path) -> None:
    from numerflow.train.prepare import PreparedData

    _write_training(config_dir, models=["a", "b", {"name": "c", "params": {"learning_rate": 0.1}}])
    plan = _plan(config_dir, synth_root)
    [key] = data_groups(plan)  # same features and dataset parameters: one set of bins
    eras = list(range(1, 121))
    prepared = {key: PreparedData.model_construct(eras=eras)}
    fits, by_slot = plan_fits(plan, prepared, RunPaths(run_id="r", run_dir=Path("/tmp/r")))
    per_slot = len(plan.slots[0].targets) * plan.slots[0].folds.n_folds
    assert by_slot["a"] == by_slot["b"]  # a and b train the same models
    assert not set(by_slot["a"]) & set(by_slot["c"])  # c's learning rate makes its own
    assert len(fits) == 2 * per_slot


def test_learning_rate_parameter_reaches_lightgbm_under_both_sources(
    config_dir: Path, synth_root: Path
) -> None:
    from numerflow.config.parameters import overrides_from

    overrides = overrides_from({"learning_rate": 0.03, "n_estimators": 77}, None)
    program = _plan(config_dir, synth_root, overrides).slots[0]
    assert (program.params.learning_rate, program.params.num_iterations) == (0.03, 77)
    manual = _plan(config_dir, synth_root, overrides | {"training.params_source": "manual"}).slots[0]
    assert (manual.params.learning_rate, manual.params.num_iterations) == (0.03, 77)
    assert manual.params.to_lightgbm(seed=1)["learning_rate"] == 0.03


def test_unknown_param_set_names_the_slot_and_the_file(config_dir: Path) -> None:
    _write_training(config_dir, models=[{"name": "m", "param_set": "nope"}])
    with pytest.raises(
        ConfigError, match=r"config/training.yaml: models: m: param_set 'nope' is not under param_sets"
    ):
        load_config(config_dir)
    _write_training(config_dir, models=[{"name": "m", "params": {"learning_rte": 0.1}}])
    with pytest.raises(
        ConfigError,
        match=r"training.yaml: models.0.params.learning_rte: not a LightGBM .* did you mean learning_rate",
    ):
        load_config(config_dir)
    _write_training(config_dir, models=["m", "m"])
    with pytest.raises(ConfigError, match="model names are listed twice"):
        load_config(config_dir)


def test_the_device_decision_carries_onto_every_slot_and_limits_the_data(
    config_dir: Path, synth_root: Path
) -> None:
    _write_training(config_dir, models=["a", {"name": "b", "params": {"max_depth": 7}}])
    config = load_config(
        config_dir, {"training.data.dir": str(synth_root), "training.data.row_limit": 1_000_000}
    )
    probe = probe_gpus(FakeNvml([("RTX 4060", 8, 1.9)]), visible=None)
    full_v5 = shape_for(config, 2_700_000, 2_376)  # at the config's era_stride 4
    decision = decide(ProgramInputParams(), probe, Capability(ok=True, reason="sim"), False, full_v5)
    assert decision.era_stride == 8 and decision.max_features is not None  # 1.9 GiB needs both cuts
    device_free = resolve_plan(config, "v5.2")
    plan = apply_decision(device_free, decision)
    assert plan.data.era_stride == 8  # the decision's cut
    assert plan.data.row_limit == 1_000_000  # the user's own limit stays
    for slot in plan.slots:
        assert [s.params.device_type for s in slot.ladder] == [
            step.params.device_type for step in decision.ladder
        ]
        assert slot.ladder[0].params.gpu_device_id == decision.params.gpu_device_id
    assert plan.slot("b").params.max_depth == 7 and plan.slot("a").params.max_depth == 5
    assert all(len(s.features) <= decision.max_features for s in plan.slots)
    looser = decision.model_copy(update={"era_stride": 2})
    assert apply_decision(device_free, looser).data.era_stride == 4  # never loosens the user's


def test_submit_plan_uses_each_slots_latest_run(config_dir: Path, tmp_path: Path) -> None:
    from numerflow.runs.manifest import mark_latest

    work_dir = tmp_path / "runs"
    _write_training(config_dir, models=["a", "b"])
    config = load_config(config_dir, {"training.work_dir": str(work_dir)})
    (work_dir / "r1" / "slots" / "a").mkdir(parents=True)
    mark_latest(work_dir, work_dir / "r1", "a")
    plan = submit_plan_for_round(config)
    assert {s.name: s.trained_dir for s in plan.slots} == {"a": work_dir / "r1" / "slots" / "a", "b": None}
    assert [s.name for s in submit_plan_for_round(config, ["b"]).slots] == ["b"]


def test_fnc_neutralises_against_the_named_feature_set_when_the_data_has_it(
    config_dir: Path, version_dir: Path, tmp_path: Path
) -> None:
    import json

    features_json = json.loads((version_dir / "features.json").read_text(encoding="utf-8"))
    config = load_config(config_dir, {"training.data.dir": str(tmp_path)})
    (tmp_path / "v5.2").mkdir()
    (tmp_path / "v5.2" / "features.json").write_text(json.dumps(features_json), encoding="utf-8")
    [slot] = resolve_plan(config, "v5.2").slots
    assert slot.neutralisers == slot.features  # no fncv3_features in this data: the slot's own

    fncv3 = features_json["feature_sets"]["all"][-3:]
    features_json["feature_sets"]["fncv3_features"] = fncv3
    (tmp_path / "v5.2" / "features.json").write_text(json.dumps(features_json), encoding="utf-8")
    [slot] = resolve_plan(config, "v5.2").slots
    assert slot.neutralisers == fncv3 and slot.features != fncv3


def test_the_plan_and_its_output_carry_canonical_parameters(config_dir: Path, synth_root: Path) -> None:
    from numerflow.runs.folders import start_run

    _write_param_sets(config_dir, smooth={"reg_lambda": 2.0, "path_smooth": 1.0})
    _write_training(
        config_dir,
        work_dir=str(config_dir.parent / "runs"),
        models=["plain", {"name": "tuned", "param_set": "smooth", "params": {"min_child_samples": 50}}],
    )
    plan = _plan(config_dir, synth_root)
    plain, tuned = plan.slots
    written = tuned.params.model_dump()
    assert (written["lambda_l2"], written["path_smooth"], written["min_data_in_leaf"]) == (2.0, 1.0, 50)
    assert not {"reg_lambda", "min_child_samples"} & set(written)
    assert len(data_groups(plan)) == 2  # min_data_in_leaf shapes the bins: binned apart from plain

    paths = start_run(plan)
    output = yaml.safe_load((paths.run_dir / plan.output.run_file).read_text(encoding="utf-8"))
    assert output["slots"]["tuned"]["params"] == tuned.params.model_dump(mode="json")
    assert output["slots"]["plain"]["params"]["num_iterations"] == plain.params.num_iterations


def test_the_device_is_decided_once_on_the_device_free_plans_shape(
    config_dir: Path, synth_root: Path, version_dir: Path
) -> None:
    from numerflow.data.files import training_eras
    from numerflow.data.rows import SelectedRows
    from numerflow.runs.device import decide_device, training_shape
    from numerflow.runs.folders import start_run

    _write_training(config_dir, models=["a", {"name": "b", "max_features": 5}])
    config = load_config(config_dir, {"training.data.dir": str(synth_root)})
    device_free = resolve_plan(config, "v5.2")
    assert device_free.decision is None and all(slot.ladder == [] for slot in device_free.slots)
    with pytest.raises(ValueError, match="slot a: the device is not decided yet"):
        device_free.slot("a").data_key()  # needs the parameters the decision gives
    with pytest.raises(ValueError, match="not decided yet"):
        start_run(device_free)

    shape = training_shape(device_free)  # the widest slot, the configured rows, before any feature is read
    train = version_dir / "train.parquet"
    stride = config.training.data.era_stride
    assert shape.rows == len(SelectedRows(train, training_eras(train, stride, None).tolist()))
    assert shape.features == len(device_free.slot("a").features) > len(device_free.slot("b").features) == 5
    n_folds = config.training.folds.n_folds
    assert (shape.era_stride, shape.train_fraction) == (stride, (n_folds - 1) / n_folds)

    plan = apply_decision(device_free, decide_device(device_free, probe_gpus(FakeNvml([]), visible=None)))
    assert plan.decision is not None and plan.decision.choice == "cpu" and plan.decision.shape == shape
    assert plan.device_policy == device_free.device_policy  # what the final model and Dask workers reuse
    for slot in plan.slots:
        assert [step.name for step in slot.ladder] == ["cpu"] and slot.params.device_type == "cpu"
        assert slot.params == slot.recipe_params.model_copy(update={"device_type": "cpu"})
