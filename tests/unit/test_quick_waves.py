"""A wave of quick calls is waited for on the spot; a slow one is not (agents.batch_run._wait_if_quick)."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import pytest

from yadtq_app.agents.batch_run import QUICK_WAVE_WAIT, Call, _wait_if_quick
from yadtq_app.application import app
from yadtq_app.execution import is_quick, start_in_thread
from yadtq_app.registry import TaskDef
from yadtq_app.wire import task_request_from_json


def _wave(taskdef: TaskDef, n: int, *args: Any) -> list[Call]:
    calls = []
    for i in range(n):
        request = task_request_from_json({"task-id": f"{taskdef.name}-{i}", "task": taskdef.name, "args": list(args)})
        call = Call(event=None, request=request, taskdef=taskdef)  # type: ignore[arg-type]  # no message needed here
        call.future = start_in_thread(taskdef, list(args), {}, threads=app.threads, context=None)
        calls.append(call)
    return calls


def _taskdef(name: str, fn: Callable[..., Any]) -> TaskDef:
    return TaskDef(name=name, fn=fn)


async def test_a_wave_of_quick_calls_is_done_when_the_wait_returns() -> None:
    taskdef = _taskdef("unit.quick_add", lambda a, b: a + b)
    wave = _wave(taskdef, 8, 2, 3)
    _wait_if_quick(wave)
    assert all(call.future is not None and call.future.done() for call in wave)  # no await in between
    assert [call.future.result() for call in wave if call.future is not None] == [5] * 8
    assert is_quick(taskdef)


async def test_a_call_that_outlasts_the_wait_marks_its_task_slow_and_is_not_waited_for_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    waits = []
    wait = app.threads.wait

    def counted(futures: Any, timeout: float) -> bool:
        waits.append(timeout)
        return wait(futures, timeout)

    monkeypatch.setattr(app.threads, "wait", counted)
    gate = threading.Event()
    taskdef = _taskdef("unit.blocking", gate.wait)
    try:
        first = _wave(taskdef, 1, 5)
        began = time.monotonic()
        _wait_if_quick(first)
        assert time.monotonic() - began >= QUICK_WAVE_WAIT
        assert first[0].future is not None and not first[0].future.done()
        assert not is_quick(taskdef)  # its call is still running: slow from now on
        second = _wave(taskdef, 1, 5)
        _wait_if_quick(second)
        assert waits == [QUICK_WAVE_WAIT]  # the second wave was not waited for
        assert second[0].future is not None and not second[0].future.done()
        assert not is_quick(taskdef)
    finally:
        gate.set()
    assert await first[0].future is True
    assert await second[0].future is True
