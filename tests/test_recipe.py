"""The flows read as recipes: short bodies whose every step is a Prefect task or subflow (so it
shows in the UI), and per-slot bookkeeping as a typed outcome. Static and unit checks, no server."""

from __future__ import annotations

import ast
import builtins
import inspect
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from prefect import Flow, Task
from pydantic import BaseModel

import flows.submission
import flows.submit
import flows.weekly
from numerflow.config.models import ScaleOutConfig
from numerflow.runs.outcome import RunOutcome, StepError
from numerflow.train.fit import FoldResult

# Calls a flow body may make besides tasks, subflows and typed values, each for a reason a task
# cannot serve.
ALLOWED = {
    # the parameters and config, read first: a bad value fails the run with one message
    "overrides_from",
    "load_config",
    # credentials stay in the flow's process: never a task's input or result
    "connect",
    "account",
    # the flow run's own name, heartbeat and events
    "rename_run",
    "_run_name",
    "_name_runs",
    "heartbeat_start",
    "emit_round_started",
    # artifacts on the flow run itself (made in a task, they would belong to the task run)
    "publish_run_plan",
    "publish_run",
    "publish_submissions",
    "live_scores_step",
    # the run's outcome and final state from what its steps returned
    "final_state",
    "submission_outcome",
    "upload_failure_state",
    # the per-round plan and its models from the config (pure, no I/O)
    "submit_plan_for_round",
    "submitting_models",
    "predicting_models",
    # clocks
    "time.monotonic",
    "utc_now",
    # run a task (or a slot's tasks) once per slot: a failed one fails only its slot
    "each_slot",
    "submit_slots",
    # the fold subflow on the task runner the plan picks (checked to return a Flow below)
    "fold_flow",
    # builtins that only shape values
    "locals",
    "dict",
    "list",
}

# (flow, its module, the most lines its body may have)
RECIPES = [
    (flows.weekly.weekly_flow, flows.weekly, 40),
    (flows.submission.submission_flow, flows.submission, 25),
    (flows.submit.submit_flow, flows.submit, 20),
]


def _body(function: Callable[..., object]) -> tuple[ast.FunctionDef, list[str]]:
    """The function's AST and its body's lines from the docstring's end to the last line."""
    source = textwrap.dedent(inspect.getsource(inspect.unwrap(function)))
    tree = ast.parse(source).body[0]
    assert isinstance(tree, ast.FunctionDef)
    first = tree.body[1] if ast.get_docstring(tree) else tree.body[0]
    lines = source.splitlines()[first.lineno - 1 : tree.body[-1].end_lineno]
    return tree, [line for line in lines if line.strip()]


def _step_kind(call: ast.Call, module: ModuleType, typed_methods: set[str]) -> str | None:
    """What the call is (a task, a subflow, ...), or None when it is none of the allowed kinds."""
    func = call.func
    if isinstance(func, ast.Name):
        value = vars(module).get(func.id, getattr(builtins, func.id, None))
        if isinstance(value, Task):
            return "task"
        if isinstance(value, Flow):
            return "subflow"
        if inspect.isclass(value) and issubclass(value, BaseModel):
            return "typed value"
        return "allowed" if func.id in ALLOWED else None
    if isinstance(func, ast.Attribute):
        owner = func.value
        if isinstance(owner, ast.Name) and f"{owner.id}.{func.attr}" in ALLOWED:
            return "allowed"
        return "typed method" if func.attr in typed_methods else None
    if isinstance(func, ast.Call) and isinstance(func.func, ast.Name) and func.func.id == "fold_flow":
        return "subflow" if isinstance(vars(module)["fold_flow"](ScaleOutConfig()), Flow) else None
    return None


def _typed_methods(module: ModuleType) -> set[str]:
    """Methods of the pydantic models the module uses: reading or building typed values."""
    models = [v for v in vars(module).values() if inspect.isclass(v) and issubclass(v, BaseModel)]
    return {
        name
        for model in models
        for name, member in vars(model).items()
        if not name.startswith("_") and (inspect.isfunction(member) or isinstance(member, classmethod))
    }


@pytest.mark.parametrize(("flow", "module", "limit"), RECIPES, ids=lambda v: getattr(v, "name", ""))
def test_flow_body_is_a_short_recipe_of_tasks_and_subflows(
    flow: Flow, module: ModuleType, limit: int
) -> None:
    tree, lines = _body(flow.fn)
    assert len(lines) < limit, f"{flow.name}: {len(lines)} lines in the body, keep it under {limit}"
    typed = _typed_methods(module)
    kinds = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.lineno > 1:  # not the decorators
            kinds[ast.unparse(node.func)] = _step_kind(node, module, typed)
    others = sorted(name for name, kind in kinds.items() if kind is None)
    assert not others, f"{flow.name} calls {others}: make each a task or subflow (or allow it, with why)"
    assert "task" in kinds.values()
    assert not any(isinstance(node, ast.Try) for node in ast.walk(tree)), (
        "per-slot failures are typed outcomes"
    )


def test_the_weekly_recipe_shows_every_step_of_a_run_as_a_task_or_subflow() -> None:
    """The steps docs/internals.md's "What a weekly run does" names are all there, as tasks."""
    source = inspect.getsource(inspect.unwrap(flows.weekly.weekly_flow.fn))
    steps = [
        "resolve_run_plan",
        "probe_gpu",
        "decide_device_task",
        "start_run_folder",
        "check_final_model",
        "prepare_training_data",
        "plan_fold_fits",
        "record_device",
        "stack_and_score",
        "train_final_models_task",
        "write_manifest",
        "submission_flow",
        "prune_old_runs",
    ]
    missing = [s for s in steps if s not in source]
    assert not missing, missing
    assert all(isinstance(vars(flows.weekly)[s], Task | Flow) for s in steps)


def _fold(target: str, fold: int) -> FoldResult:
    return FoldResult.model_construct(target=target, fold=fold, model_path=Path(f"{target}_{fold}.txt"))


def test_a_run_outcome_fails_slots_at_their_stage_and_names_them() -> None:
    results: dict[str, FoldResult | str] = {
        "a/t/0": _fold("t", 0),
        "a/t/1": _fold("t", 1),
        "b/t/0": "Failed: disk",
    }
    outcome = RunOutcome.after_folds(
        "run1", {"a": ["a/t/0", "a/t/1"], "b": ["b/t/0"], "c": ["a/t/0"]}, results
    )
    assert [s.slot for s in outcome.going()] == ["a", "c"]
    assert outcome.slot("b").failed_at == "folds"
    assert outcome.slot("b").reason == "1 fold model(s) failed: Failed: disk"
    assert len(outcome.slot("a").fold_results) == 2

    scored = outcome.after("score", {"a": "evaluation of a", "c": StepError.of(ValueError("no eras"))})
    assert outcome.slot("c").status == "training"  # each step makes a new outcome
    final = scored.after("final model", {"a": StepError.of(OSError("disk full"))})
    assert [s.slot for s in final.failed()] == ["a", "b", "c"] and final.going() == []
    assert final.failures() == {
        "a": "final model: OSError: disk full",
        "b": "1 fold model(s) failed: Failed: disk",
        "c": "ValueError: no eras",
    }
    assert final.failure_message("uploads given up") == (
        "run run1: model slot(s) failed: a: final model: OSError: disk full; "
        "b: 1 fold model(s) failed: Failed: disk; c: ValueError: no eras (and uploads given up)"
    )


def test_a_slot_is_trained_once_its_manifest_is_written() -> None:
    outcome = RunOutcome.after_folds("run1", {"a": ["k"]}, {"k": _fold("t", 0)})
    assert outcome.trained() == [] and outcome.failure_message() is None
    done = outcome.after("manifest", {"a": Path("manifest.json")})
    assert [s.slot for s in done.trained()] == ["a"] and done.slot("a").manifest == Path("manifest.json")
