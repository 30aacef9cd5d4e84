"""run_task: argument check, time limit, sync functions off the loop, error capture."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable

import pytest

from yadtq_app.execution import Outcome, error_info, run_task
from yadtq_app.registry import TaskDef
from yadtq_app.threads import ThreadRunner


def td(fn: Callable[..., Any]) -> TaskDef:
    return TaskDef(name=fn.__name__, fn=fn)


def multiply(a, b):
    return a * b


async def amultiply(a, b):
    await asyncio.sleep(0)
    return a * b


async def test_sync_success() -> None:
    assert await run_task(td(multiply), [4, 5], {}, timeout=5) == Outcome(ok=True, result=20)


async def test_async_success_with_kwargs() -> None:
    out = await run_task(td(amultiply), [4], {"b": 6}, timeout=5)
    assert out.ok is True and out.result == 24 and out.error is None


@pytest.mark.parametrize("is_async", [False, True])
async def test_exception_in_body(is_async: bool) -> None:
    def divide(a, b):
        return a / b

    async def adivide(a, b):
        return a / b

    out = await run_task(td(adivide if is_async else divide), [1, 0], {}, timeout=5)
    assert out.ok is False and out.result is None
    assert out.error["type"] == "ZeroDivisionError"
    assert "division by zero" in out.error["message"]
    assert "Traceback" in out.error["traceback"] and "return a / b" in out.error["traceback"]


async def test_bad_arguments() -> None:
    calls = []

    def job(a):
        calls.append(a)

    out = await run_task(td(job), [1, 2], {}, timeout=5)
    assert out.ok is False
    assert out.error["type"] == "InvalidArguments" and out.error["message"].startswith("job:")
    assert out.error["traceback"] is None
    assert calls == []  # never called


async def test_async_timeout() -> None:
    async def slow():
        await asyncio.sleep(10)

    t0 = time.monotonic()
    out = await run_task(td(slow), [], {}, timeout=0.05)
    assert time.monotonic() - t0 < 2
    assert out.ok is False and out.error["type"] == "TimeLimitExceeded"
    assert "0.05" in out.error["message"] and "slow" in out.error["message"]


async def test_sync_timeout() -> None:
    def blocking():
        time.sleep(0.3)
        return "late"

    pool = ThreadRunner(1)
    t0 = time.monotonic()
    out = await run_task(td(blocking), [], {}, timeout=0.05, threads=pool)
    elapsed = time.monotonic() - t0
    pool.close()
    assert elapsed < 0.25  # the caller is not held until the thread ends
    assert out.ok is False and out.error["type"] == "TimeLimitExceeded"


@pytest.mark.parametrize("value", [object(), {1, 2}, b"bytes"])
async def test_result_not_serializable(value: Any) -> None:
    def job():
        return value

    out = await run_task(td(job), [], {}, timeout=5)
    assert out.ok is False and out.error["type"] == "ResultNotSerializable"
    assert out.result is None


async def test_nan_result_is_not_json() -> None:
    def job():
        return float("nan")

    out = await run_task(td(job), [], {}, timeout=5)
    assert out.ok is False and out.error["type"] == "ResultNotSerializable"


@pytest.mark.parametrize("is_async", [False, True])
async def test_timeout_error_raised_by_body_is_a_normal_failure(is_async: bool) -> None:
    def job():
        raise TimeoutError("upstream API timed out")

    async def ajob():
        raise TimeoutError("upstream API timed out")

    out = await run_task(td(ajob if is_async else job), [], {}, timeout=5)
    assert out.error["type"] == "TimeoutError"
    assert out.error["message"] == "upstream API timed out"


async def test_sync_function_runs_off_the_loop_thread() -> None:
    def where():
        return threading.get_ident()

    async def awhere():
        return threading.get_ident()

    loop_thread = threading.get_ident()
    sync_out = await run_task(td(where), [], {}, timeout=5)
    async_out = await run_task(td(awhere), [], {}, timeout=5)
    assert sync_out.ok and sync_out.result != loop_thread
    assert async_out.ok and async_out.result == loop_thread


async def test_sync_function_uses_given_threads() -> None:
    def name():
        return threading.current_thread().name

    pool = ThreadRunner(1, name="yadtq-unit")
    out = await run_task(td(name), [], {}, timeout=5, threads=pool)
    pool.close()
    assert out.result == "yadtq-unit_0"


async def test_cancellation_propagates() -> None:
    async def slow():
        await asyncio.sleep(10)

    t = asyncio.ensure_future(run_task(td(slow), [], {}, timeout=5))
    await asyncio.sleep(0.01)
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t


def test_error_info_without_traceback() -> None:
    try:
        raise KeyError("k")
    except KeyError as exc:
        assert error_info(exc, with_traceback=False) == {"type": "KeyError", "message": "'k'", "traceback": None}
        assert "KeyError" in error_info(exc)["traceback"]


@pytest.mark.parametrize("is_async", [False, True])
async def test_the_task_sees_its_context_with_the_attempts_start(is_async: bool) -> None:
    from yadtq_app import current_task
    from yadtq_app.context import TaskContext

    def whoami() -> list[Any]:
        ctx = current_task()
        return [ctx.id, ctx.attempt, ctx.worker, ctx.started_at]

    async def awhoami() -> list[Any]:
        return whoami()

    ctx = TaskContext(id="t1", name="whoami", attempt=2, worker="w9", started_at=1234.5)
    pool = ThreadRunner(1)
    out = await run_task(td(awhoami if is_async else whoami), [], {}, timeout=5, threads=pool, context=ctx)
    pool.close()
    assert out == Outcome(ok=True, result=["t1", 2, "w9", 1234.5])


async def test_thread_runner_runs_calls_in_parallel_threads_and_delivers_every_result() -> None:
    pool = ThreadRunner(4, name="yadtq-unit")
    gate = threading.Event()

    def blocked() -> str:
        gate.wait(5)
        return "released"

    stuck = pool.submit(blocked)  # one thread held: the other three serve the rest
    results = await asyncio.gather(*(pool.submit(multiply, i, 3) for i in range(500)))
    assert results == [3 * i for i in range(500)]
    assert not stuck.done()
    gate.set()
    assert await stuck == "released"
    pool.close()


async def test_thread_runner_wakes_the_loop_once_for_calls_that_finish_together() -> None:
    pool = ThreadRunner(2)
    assert await pool.submit(multiply, 1, 2) == 2  # threads started
    deliveries = 0
    threads = pool._pool
    deliver = threads._deliver

    def counted() -> None:
        nonlocal deliveries
        deliveries += 1
        deliver()

    threads._deliver = counted  # type: ignore[method-assign]
    futures = [pool.submit(multiply, i, 2) for i in range(200)]
    time.sleep(0.5)  # the loop is busy (blocked) while every call finishes in the threads
    assert await asyncio.gather(*futures) == [2 * i for i in range(200)]
    assert deliveries == 1
    pool.close()


async def test_thread_runner_wait_hands_over_quick_calls_without_the_loop() -> None:
    pool = ThreadRunner(2)
    futures = [pool.submit(multiply, i, 2) for i in range(8)]
    assert pool.wait(futures, 5.0) is True
    assert all(f.done() for f in futures)  # no await in between: handed over by the wait
    assert [f.result() for f in futures] == [2 * i for i in range(8)]
    pool.close()


async def test_thread_runner_wait_ends_at_its_timeout_and_the_call_comes_back_later() -> None:
    pool = ThreadRunner(2)
    gate = threading.Event()
    quick = pool.submit(multiply, 3, 3)
    stuck = pool.submit(gate.wait, 5)
    began = time.monotonic()
    assert pool.wait([quick, stuck], 0.05) is False
    assert 0.04 <= time.monotonic() - began < 2.0
    assert quick.done() and quick.result() == 9  # finished meanwhile: handed over
    assert not stuck.done()
    gate.set()
    assert await asyncio.wait_for(stuck, 5) is True  # the usual way, through the loop
    pool.close()


async def test_thread_runner_wait_also_hands_over_other_calls_finished_meanwhile() -> None:
    pool = ThreadRunner(2)
    assert await pool.submit(multiply, 1, 1) == 1  # threads started
    other_gate, my_gate = threading.Event(), threading.Event()
    other = pool.submit(other_gate.wait, 5)  # someone else's call, not waited for
    mine = pool.submit(my_gate.wait, 5)
    finished = pool._pool._finished

    def release_in_order() -> None:  # ``other`` ends while the loop's thread waits for ``mine``
        other_gate.set()
        deadline = time.monotonic() + 5
        while not finished and time.monotonic() < deadline:
            time.sleep(0.001)
        my_gate.set()

    helper = threading.Thread(target=release_in_order)
    helper.start()
    assert pool.wait([mine], 5.0) is True
    helper.join(5)
    assert other.done() and other.result() is True  # its wake-up was left to the wait
    assert mine.result() is True
    pool.close()


async def test_thread_runner_wait_without_calls_in_threads_returns_at_once() -> None:
    pool = ThreadRunner(1)
    done = asyncio.get_running_loop().create_future()
    done.set_result(1)
    began = time.monotonic()
    assert pool.wait([done], 5.0) is True  # no pool yet, and a future not of the pool
    assert await pool.submit(multiply, 2, 2) == 4
    assert pool.wait([done], 5.0) is True
    assert time.monotonic() - began < 1.0
    pool.close()


async def test_a_task_is_quick_until_a_call_of_it_is_not() -> None:
    from yadtq_app.execution import QUICK_CALL, is_quick, mark_slow, start_in_thread

    pool = ThreadRunner(1)
    delay = [0.0]

    def sometimes_slow() -> str:
        if delay[0]:
            time.sleep(delay[0])
        return "ok"

    taskdef = TaskDef(name="unit.sometimes_slow", fn=sometimes_slow)
    assert is_quick(taskdef)  # not run here yet
    delay[0] = 20 * QUICK_CALL
    future = start_in_thread(taskdef, [], {}, threads=pool, context=None)
    assert await future == "ok"
    assert not is_quick(taskdef)
    delay[0] = 0.0
    assert await start_in_thread(taskdef, [], {}, threads=pool, context=None) == "ok"
    assert is_quick(taskdef)
    mark_slow(taskdef)  # a wait for its call ended first
    assert not is_quick(taskdef)
    pool.close()


async def test_a_call_run_by_run_task_counts_for_quickness_too() -> None:
    from yadtq_app.execution import QUICK_CALL, is_quick

    pool = ThreadRunner(1)
    delay = [20 * QUICK_CALL]

    def sometimes_slow() -> str:
        if delay[0]:
            time.sleep(delay[0])
        return "ok"

    taskdef = TaskDef(name="unit.run_task_sometimes_slow", fn=sometimes_slow)
    outcome = await run_task(taskdef, [], {}, timeout=5, threads=pool)
    assert outcome.ok and outcome.result == "ok"
    assert not is_quick(taskdef)  # the one-message path's calls are timed as the batches' are
    delay[0] = 0.0
    assert (await run_task(taskdef, [], {}, timeout=5, threads=pool)).ok
    assert is_quick(taskdef)
    pool.close()


async def test_thread_runner_hands_back_exceptions_and_the_callers_context() -> None:
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    pool = ThreadRunner(1)

    def fail() -> None:
        raise KeyError("nope")

    var.set("the caller's")
    assert await pool.submit(var.get) == "the caller's"
    with pytest.raises(KeyError, match="nope"):
        await pool.submit(fail)
    pool.close()


async def test_thread_runner_skips_a_call_cancelled_before_a_thread_took_it() -> None:
    pool = ThreadRunner(1)
    gate = threading.Event()
    ran = []
    first = pool.submit(gate.wait, 5)
    second = pool.submit(ran.append, "second")
    second.cancel()
    gate.set()
    assert await first is True
    assert await pool.submit(ran.append, "third") is None
    assert ran == ["third"]
    pool.close()


async def test_thread_runner_threads_are_daemons_and_end_on_close() -> None:
    pool = ThreadRunner(3, name="yadtq-close")
    assert await pool.submit(threading.current_thread) is not None
    threads = [t for t in threading.enumerate() if t.name.startswith("yadtq-close")]
    assert len(threads) == 3 and all(t.daemon for t in threads)
    pool.close()
    for t in threads:
        t.join(5)
    assert not any(t.is_alive() for t in threads)
    assert await pool.submit(multiply, 2, 2) == 4  # a closed runner starts again when used
    pool.close()


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_result_over_the_limit_is_a_failure_that_is_not_retried(is_async: bool) -> None:
    fn = amultiply if is_async else multiply
    at_limit = await run_task(td(fn), ["ab", 5], {}, timeout=5, max_result_bytes=len('"ababababab"'))
    assert at_limit == Outcome(ok=True, result="ab" * 5)
    over = await run_task(td(fn), ["ab", 6], {}, timeout=5, max_result_bytes=len('"ababababab"'))
    assert over.ok is False and not over.retryable
    assert over.error is not None and over.error["type"] == "ResultTooLarge"
    assert "14 bytes" in over.error["message"] and "12" in over.error["message"]


async def test_no_result_limit_unless_given() -> None:
    assert (await run_task(td(multiply), ["ab", 100_000], {}, timeout=5)).ok


def test_error_text_is_bounded_keeping_the_messages_head_and_the_tracebacks_tail() -> None:
    from yadtq_app.execution import MAX_ERROR_MESSAGE, MAX_TRACEBACK

    def deep(n: int) -> None:
        if n:
            deep(n - 1)
        raise ValueError("head" + "m" * 100_000)

    try:
        deep(400)
    except ValueError as exc:
        info = error_info(exc)
    assert info["message"].startswith("headmmm") and len(info["message"]) < MAX_ERROR_MESSAGE + 100
    assert "more characters" in info["message"]
    assert len(info["traceback"]) < MAX_TRACEBACK + 100
    assert info["traceback"].rstrip().endswith("more characters]")  # the exception's line, clipped
    assert "ValueError: headmmm" in info["traceback"] and "in deep" in info["traceback"]


def test_an_exception_whose_str_fails_still_has_an_error() -> None:
    class Weird(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert error_info(Weird(), with_traceback=False)["message"] == "<unprintable Weird: RuntimeError>"
