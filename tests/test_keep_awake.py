"""A run holds off Windows' idle sleep while it runs and lets go after (simulated Windows: the
Win32 call recorded instead of made)."""

from __future__ import annotations

import functools
import threading

import pytest
from prefect import flow

import flows.expected
from flows.expected import fails_cleanly
from numerflow.ops.keepawake import ES_CONTINUOUS, ES_SYSTEM_REQUIRED, keep_awake


class ExecutionState:
    """Records SetThreadExecutionState calls: the flags and the thread of each."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, flags: int) -> int:
        self.calls.append((flags, threading.get_ident()))
        return ES_CONTINUOUS

    @property
    def held(self) -> bool:
        return bool(self.calls) and self.calls[-1][0] & ES_SYSTEM_REQUIRED != 0


@pytest.fixture
def state(monkeypatch: pytest.MonkeyPatch) -> ExecutionState:
    recorder = ExecutionState()
    monkeypatch.setattr(flows.expected, "keep_awake", functools.partial(keep_awake, True, recorder))
    return recorder


def test_a_run_holds_off_idle_sleep_and_lets_go_after(state: ExecutionState) -> None:
    held_while_running = []

    @flow
    @fails_cleanly
    def run(fail: bool = False) -> int:
        held_while_running.append(state.held)
        if fail:
            raise RuntimeError("the run broke")
        return 7

    assert run.fn() == 7
    with pytest.raises(RuntimeError, match="the run broke"):
        run.fn(fail=True)
    assert held_while_running == [True, True]
    flags = [flags for flags, _ in state.calls]
    assert flags == [ES_CONTINUOUS | ES_SYSTEM_REQUIRED, ES_CONTINUOUS] * 2  # released, also on error
    assert len({thread for _, thread in state.calls}) == 1  # set and cleared on the same thread
    assert not state.held


def test_a_subflow_ending_leaves_its_parents_hold_in_place() -> None:
    current = ES_CONTINUOUS

    def set_state(flags: int) -> int:  # as Windows answers: the state before the call
        nonlocal current
        before, current = current, flags
        return before

    with keep_awake(True, set_state):  # the round flow
        with keep_awake(True, set_state):  # its submission subflow
            pass
        assert current & ES_SYSTEM_REQUIRED  # live scores and hosted checks still hold it
    assert current == ES_CONTINUOUS


def test_nothing_is_called_off_windows() -> None:
    recorder = ExecutionState()
    with keep_awake(False, recorder):
        pass
    assert recorder.calls == []
