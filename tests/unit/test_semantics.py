"""Retries, scheduling, cancellation, resubmission and expiry in the pure status logic,
plus the pieces they are built from (decide, backoff, progress, options, process pool)."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import os
import random
import time
from typing import Any, Optional

import pytest

from yadtq_app.context import ProgressReporter, TaskContext
from yadtq_app.errors import InvalidTask, Retry, TaskRegistrationError, TimeLimitExceeded, YadtqError
from yadtq_app.execution import ProcessRunner, run_task
from yadtq_app.records import TaskEvent, TaskRequest, TaskState
from yadtq_app.registry import TaskRegistry
from yadtq_app.running import RunningTasks
from yadtq_app.state import (
    CANCEL_NOW,
    DEFER,
    RUN,
    SKIP,
    WAIT,
    backoff_delay,
    decide,
    merge_rows,
    schedule_of,
)
from yadtq_app.state import apply_event as fold1
from yadtq_app.wire import task_request_from_json
from yadtq_app.worker_memory import RecentlyFinished


def ev(kind: str, **kw: Any) -> TaskEvent:
    kw.setdefault("task", "t")
    return TaskEvent(id="t1", kind=kind, **kw)


def fold(*events: TaskEvent, state: Optional[TaskState] = None) -> TaskState:
    for e in events:
        state = fold1(state, e)
    assert state is not None
    return state


def req(**kw: Any) -> TaskRequest:
    return TaskRequest(id="t1", task="t", **kw)


# -- the status machine ---------------------------------------------------------------
def test_retrying_then_success_keeps_history_and_counts_retries() -> None:
    s = fold(ev("queued", at=1.0), ev("processing", attempt=1, at=2.0),
             ev("retrying", attempt=1, at=3.0, next_run_at=5.0, error={"type": "E", "message": "boom"}))
    assert (s.status, s.attempts, s.retries, s.next_run_at) == ("retrying", 1, 1, 5.0)
    assert schedule_of(s) == (5.0, 2, 0)
    s = fold(ev("processing", attempt=2, at=5.1), ev("success", attempt=2, at=6.0, result=7), state=s)
    assert (s.status, s.result, s.error, s.next_run_at, schedule_of(s)) == ("success", 7, None, None, None)
    assert [(h["attempt"], h["status"]) for h in s.history] == [(1, "retrying"), (2, "success")]
    assert s.history[0]["error"] == {"type": "E", "message": "boom"}


def test_stale_attempt_reports_are_fenced() -> None:
    s = fold(ev("processing", attempt=1), ev("retrying", attempt=1, next_run_at=5.0),
             ev("processing", attempt=2, worker="w2"))
    for late in (ev("success", attempt=1, result="stale"), ev("failed", attempt=1),
                 ev("retrying", attempt=1, next_run_at=9.0), ev("processing", attempt=1),
                 ev("progress", attempt=1, progress={"fraction": 0.9})):
        after = fold(late, state=s)
        assert (after.status, after.attempts, after.worker, after.progress) == ("processing", 2, "w2", None), late
    # the retrying row itself ignores a repeat of the failed attempt's processing event
    r = fold(ev("processing", attempt=1), ev("retrying", attempt=1, next_run_at=5.0))
    assert fold(ev("processing", attempt=1), state=r).status == "retrying"


def test_queued_with_eta_is_scheduled_and_cancel_ends_it() -> None:
    s = fold(ev("queued", at=1.0, next_run_at=10.0, options={"eta": 10.0}))
    assert (s.status, s.next_run_at, s.options) == ("scheduled", 10.0, {"eta": 10.0})
    assert schedule_of(s) == (10.0, 1, 0)
    s = fold(ev("cancel", at=2.0), state=s)
    assert (s.status, s.finished_at, s.next_run_at, schedule_of(s)) == ("cancelled", 2.0, None, None)
    assert s.error["type"] == "Cancelled"
    # nothing that arrives later revives it
    assert fold(ev("processing", attempt=1), ev("success", attempt=1), state=s).status == "cancelled"


def test_cancel_of_a_running_task_flags_it_and_its_outcome_ends_it() -> None:
    s = fold(ev("processing", attempt=1), ev("cancel"))
    assert (s.status, s.cancel_requested) == ("processing", True)
    s = fold(ev("cancelled", attempt=1, at=4.0), state=s)
    assert (s.status, s.finished_at) == ("cancelled", 4.0)


def test_requeue_starts_a_new_generation_only_from_failed_or_cancelled() -> None:
    failed = fold(ev("processing", attempt=1), ev("failed", attempt=1, error={"type": "E"}))
    s = fold(ev("requeue", at=9.0), state=failed)
    assert (s.status, s.generation, s.retries, s.next_run_at, s.error, s.attempts) == ("queued", 1, 0, 9.0, None, 1)
    assert schedule_of(s) == (9.0, 2, 1)
    done = fold(ev("processing", attempt=1), ev("success", attempt=1, result=1))
    assert fold(ev("requeue"), state=done) == done
    running = fold(ev("processing", attempt=1))
    assert fold(ev("requeue"), state=running).status == "processing"


def test_merge_prefers_the_later_generation_over_a_terminal_row() -> None:
    failed = fold(ev("processing", attempt=1), ev("failed", attempt=1))
    requeued = fold(ev("requeue"), state=failed)
    assert merge_rows(failed, requeued) is requeued
    assert merge_rows(requeued, failed) is requeued
    retrying = fold(ev("processing", attempt=1), ev("retrying", attempt=1, next_run_at=1.0))
    processing = fold(ev("processing", attempt=1))
    assert merge_rows(retrying, processing) is retrying


def test_fold_is_order_insensitive_for_one_attempt_lifecycle() -> None:
    events = [ev("queued", at=1.0, submitted_at=1.0), ev("processing", attempt=1, at=2.0),
              ev("retrying", attempt=1, at=3.0, next_run_at=4.0), ev("processing", attempt=2, at=4.0),
              ev("success", attempt=2, at=5.0, result=3)]
    for order in itertools.permutations(events):
        s = fold(*order)
        assert (s.status, s.attempts, s.result, s.submitted_at) == ("success", 2, 3, 1.0), order


def test_expire_cannot_be_folded() -> None:
    with pytest.raises(ValueError):
        fold1(None, ev("expire"))


# -- decide ---------------------------------------------------------------------------
def row(status: str, attempts: int = 0, **kw: Any) -> TaskState:
    return TaskState(id="t1", task="t", status=status, attempts=attempts, **kw)


@pytest.mark.parametrize("state,request_kw,action,attempt", [
    (None, {}, RUN, 1),
    (row("queued"), {}, RUN, 1),
    (row("processing", 1), {}, RUN, 2),  # redelivered after its worker died
    (row("processing", 2), {"attempt": 1}, SKIP, 0),  # stale dispatch
    (row("processing", 2), {"attempt": 2}, RUN, 3),
    (row("retrying", 1, next_run_at=50.0), {}, SKIP, 0),  # the submission, redelivered
    (row("retrying", 1, next_run_at=50.0), {"attempt": 1}, SKIP, 0),
    (row("retrying", 1, next_run_at=50.0), {"attempt": 2}, RUN, 2),
    (row("scheduled", next_run_at=500.0), {"eta": 500.0}, SKIP, 0),
    (row("scheduled", next_run_at=50.0), {"attempt": 1}, RUN, 1),
    (None, {"eta": 500.0}, DEFER, 0),
    (None, {"eta": 50.0}, RUN, 1),  # eta already past
    (row("queued", 3, generation=1, next_run_at=90.0), {"attempt": 4}, RUN, 4),  # resubmitted
    (row("queued", 3, generation=1, next_run_at=90.0), {}, SKIP, 0),
    (row("success", 1), {}, SKIP, 0),
    (row("cancelled"), {"attempt": 1}, SKIP, 0),
    (row("processing", 1, cancel_requested=True), {}, CANCEL_NOW, 1),
])
def test_decide(state: Optional[TaskState], request_kw: dict[str, Any], action: str, attempt: int) -> None:
    d = decide(state, req(**request_kw), now=100.0)
    assert (d.action, d.attempt if action in (RUN, CANCEL_NOW) else 0) == (action, attempt), d.why


def test_decide_trusts_this_workers_memory_of_finished_attempts() -> None:
    assert decide(row("processing", 1), req(), finished=("success", 1), now=0).action == SKIP
    # ...but not for a later attempt (a resubmission of a task it had failed)
    assert decide(row("queued", 1, generation=1), req(attempt=2), finished=("failed", 1), now=0).action == RUN


def test_decide_waits_while_another_worker_holds_a_lease_on_the_attempt() -> None:
    leased = row("processing", 1, worker="w1", lease_until=103.0)
    d = decide(leased, req(), now=100.0, worker="w2")
    assert (d.action, d.attempt) == (WAIT, 1) and "w1" in d.why
    # the lease ran out: its worker is gone, run it again
    assert (decide(leased, req(), now=103.5, worker="w2").action, 2) == (RUN, 2)
    # the leasing worker itself (restarted, so not running it) does not wait for itself
    assert decide(leased, req(), now=100.0, worker="w1").action == RUN
    # a lease never outlives its attempt's end, nor holds a later attempt's dispatch back
    assert decide(row("success", 1, worker="w1", lease_until=103.0), req(), now=100.0, worker="w2").action == SKIP
    assert decide(row("processing", 2, worker="w1", lease_until=103.0), req(attempt=1), now=100.0,
                  worker="w2").action == SKIP


def test_a_message_whose_run_again_died_too_runs_once_more() -> None:
    # Attempt 2 was this submission's run again after its first worker died; its worker
    # died too: the submission, read again, is not a stale duplicate of attempt 2.
    started = fold(ev("queued", at=1.0), ev("processing", attempt=2, worker="w1", at=2.0, dispatch=1))
    assert (started.attempts, started.dispatch) == (2, 1)
    d = decide(started, req(), now=100.0, worker="w3")
    assert (d.action, d.attempt) == (RUN, 3)
    leased = row("processing", 2, worker="w1", dispatch=1, lease_until=103.0)
    assert decide(leased, req(), now=100.0, worker="w3").action == WAIT
    # a retry's own message started attempt 2: the submission read again is stale
    assert decide(row("processing", 2, worker="w1", dispatch=2), req(), now=100.0, worker="w3").action == SKIP
    assert decide(row("processing", 2, worker="w1"), req(), now=100.0, worker="w3").action == SKIP  # older rows
    # a lease renewal keeps what started the attempt
    renewed = fold(ev("processing", attempt=2, worker="w1", at=3.0, lease_until=9.0, dispatch=1), state=started)
    assert (renewed.dispatch, renewed.lease_until) == (1, 9.0)


def test_a_lease_is_folded_renewed_and_ended_by_the_outcome() -> None:
    queued = fold1(None, ev("queued", at=1.0))
    # a lease for an attempt whose start was never recorded records it, with its real start
    s = fold1(queued, ev("processing", attempt=1, worker="w1", at=5.0, started_at=2.0, lease_until=8.0))
    assert (s.status, s.attempts, s.worker, s.started_at, s.lease_until) == ("processing", 1, "w1", 2.0, 8.0)
    s = fold1(s, ev("processing", attempt=1, worker="w1", at=6.0, started_at=2.0, lease_until=9.0))
    assert (s.lease_until, s.started_at) == (9.0, 2.0)
    assert fold1(s, ev("processing", attempt=1, worker="w1", at=6.0, lease_until=7.0)).lease_until == 9.0
    # another worker's lease on the same attempt number is not its to take (fenced)
    assert fold1(s, ev("processing", attempt=1, worker="w2", at=6.0, lease_until=20.0)).lease_until == 9.0
    done = fold1(s, ev("success", attempt=1, worker="w1", at=7.0, result=1))
    assert (done.status, done.lease_until) == ("success", None)
    # a lease arriving after a newer attempt started is stale
    rerun = fold1(s, ev("processing", attempt=2, worker="w2", at=10.0))
    assert rerun.lease_until is None
    assert fold1(rerun, ev("processing", attempt=1, worker="w1", at=11.0, lease_until=14.0)) == rerun


# -- backoff --------------------------------------------------------------------------
def test_backoff_doubles_never_below_the_base_and_is_capped() -> None:
    rng = random.Random(7)
    for n in range(1, 12):
        d = backoff_delay(n, base=0.5, cap=60.0, jitter=0.25, rng=rng)
        floor = min(60.0, 0.5 * 2 ** (n - 1))
        assert floor <= d <= min(60.0, floor * 1.25)
    assert backoff_delay(3, base=1.0, cap=100.0, jitter=0.0) == 4.0
    assert backoff_delay(400, base=1.0, cap=10.0, jitter=0.5) == 10.0
    spread = {round(backoff_delay(2, base=1.0, cap=99, jitter=0.5, rng=rng), 6) for _ in range(20)}
    assert len(spread) > 10  # jitter spreads retries out
    with pytest.raises(ValueError):
        backoff_delay(0, base=1, cap=1, jitter=0)


# -- memories -------------------------------------------------------------------------
def test_recently_finished_is_bounded_and_forgets_on_request() -> None:
    r = RecentlyFinished(size=3)
    for i in range(5):
        r.add(f"t{i}", "success", 1)
    assert len(r) == 3 and r.get("t0") is None and r.get("t4") == ("success", 1)
    r.discard("t4")
    assert r.get("t4") is None


async def test_running_tasks_cancel_only_what_runs() -> None:
    running = RunningTasks()
    job = asyncio.ensure_future(asyncio.sleep(10))
    running.add("a", job)
    assert running.cancel("b") is False
    assert running.cancel("a") is True and running.was_cancelled("a")
    with pytest.raises(asyncio.CancelledError):
        await job
    running.remove("a", job)
    assert "a" not in running and len(running) == 0


# -- progress -------------------------------------------------------------------------
def reporting_context(interval: float) -> tuple[TaskContext, ProgressReporter, list[dict[str, Any]]]:
    """A task context whose progress reports land in the returned list."""
    sent: list[dict[str, Any]] = []

    async def send(value: dict[str, Any]) -> None:
        sent.append(value)

    reporter = ProgressReporter(send, asyncio.get_running_loop(), interval=interval)
    return TaskContext(id="t", name="n", attempt=1, worker="w", reporter=reporter), reporter, sent


async def until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def test_progress_reports_are_coalesced_and_the_latest_wins() -> None:
    ctx, reporter, sent = reporting_context(0.1)
    for i in range(1, 101):
        ctx.progress(i / 100, f"step {i}")
    await until(lambda: sent and sent[-1]["fraction"] == 1.0)
    assert sent[-1]["fraction"] == 1.0 and sent[-1]["message"] == "step 100"
    assert len(sent) <= 3
    reporter.close()
    ctx.progress(0.5)
    await asyncio.sleep(0.15)  # a closed reporter sends nothing more: nothing to wait for
    assert sent[-1]["fraction"] == 1.0


async def test_progress_from_a_thread_reaches_the_loop() -> None:
    ctx, _, sent = reporting_context(0.0)
    await asyncio.get_running_loop().run_in_executor(None, ctx.progress, 0.3, "from a thread")
    await until(lambda: sent)
    assert sent and sent[0]["fraction"] == 0.3 and sent[0]["message"] == "from a thread"


@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan"), "half", True])
def test_progress_rejects_bad_fractions(fraction: Any) -> None:
    ctx = TaskContext(id="t", name="n", attempt=1, worker="w")
    with pytest.raises(ValueError):
        ctx.progress(fraction)


def test_progress_without_a_reporter_says_why() -> None:
    with pytest.raises(YadtqError, match="process"):
        TaskContext(id="t", name="n", attempt=1, worker="w").progress(0.5)


# -- submission options ---------------------------------------------------------------
def test_countdown_counts_from_submission_and_eta_parses_iso() -> None:
    r = task_request_from_json({"task": "t", "countdown": 5, "submitted_at": 100.0})
    assert r.eta == 105.0 and r.options == {"eta": 105.0}
    year = datetime.datetime.now(datetime.timezone.utc).year + 1  # an eta is at most a year ahead
    r = task_request_from_json({"task": "t", "eta": f"{year}-01-01T00:00:00+01:00"})
    utc = datetime.datetime(year, 1, 1, tzinfo=datetime.timezone.utc).timestamp()
    assert r.eta == utc - 3600
    assert task_request_from_json({"task": "t", "eta": f"{year}-01-01T00:00:00"}).eta == utc  # UTC
    r = task_request_from_json({"task": "t", "max_retries": 2, "timeout": 1.5, "attempt": 3})
    assert (r.max_retries, r.timeout, r.attempt) == (2, 1.5, 3)
    assert task_request_from_json(r.to_wire()) == r


@pytest.mark.parametrize("bad", [
    {"countdown": -1}, {"countdown": "soon"}, {"countdown": 1, "eta": 5}, {"eta": "tomorrow"}, {"eta": [1]},
    {"max_retries": -1}, {"max_retries": 1.5}, {"max_retries": True}, {"timeout": 0}, {"timeout": "1"},
    {"timeout": float("inf")}, {"attempt": 0}, {"countdown": 367 * 86400}, {"eta": 1e308},
    {"eta": "9999-12-31T23:59:59"}, {"eta": time.time() + 367 * 86400},
])
def test_bad_options_are_invalid(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidTask) as info:
        task_request_from_json({"task": "t", **bad})
    assert info.value.reason == "bad-field"


# -- registry options -----------------------------------------------------------------
def test_registry_options_and_retry_on_matching() -> None:
    reg = TaskRegistry()

    def f() -> None: ...

    td = reg.register(f, max_retries=2, retry_backoff=0.5, retry_on=[ConnectionError, TimeLimitExceeded])
    assert td.max_retries == 2 and td.retry_backoff == 0.5
    assert td.retries_on(("builtins.ConnectionRefusedError", "builtins.ConnectionError", "builtins.OSError"))
    assert td.retries_on(("yadtq_app.errors.TimeLimitExceeded",))
    assert not td.retries_on(("builtins.ValueError",))
    assert reg.register(f, name="any").retries_on(("builtins.ValueError",))


@pytest.mark.parametrize("options", [{"max_retries": -1}, {"retry_backoff": -1}, {"retry_on": [42]}])
def test_bad_registry_options(options: dict[str, Any]) -> None:
    def f() -> None: ...

    with pytest.raises(TaskRegistrationError):
        TaskRegistry().register(f, **options)


def test_process_tasks_must_be_module_level_sync_functions() -> None:
    async def coro() -> None: ...

    def local() -> None: ...

    reg = TaskRegistry()
    with pytest.raises(TaskRegistrationError, match="sync"):
        reg.register(coro, process=True)
    with pytest.raises(TaskRegistrationError, match="module-level"):
        reg.register(local, process=True)
    assert reg.register(os.getpid, name="pid", process=True).process


def test_retry_rejects_a_bad_delay() -> None:
    with pytest.raises(ValueError):
        Retry(delay=-1)
    assert Retry(delay=2).delay == 2.0 and Retry().delay is None


# -- execution --------------------------------------------------------------------------
async def test_retry_and_exception_classes_reach_the_outcome() -> None:
    reg = TaskRegistry()

    def asks() -> None:
        raise Retry(delay=3)

    def breaks() -> None:
        raise ConnectionRefusedError("no")

    out = await run_task(reg.register(asks), [], {}, timeout=5)
    assert out.retry and out.retry_delay == 3.0 and out.error["type"] == "Retry"
    out = await run_task(reg.register(breaks), [], {}, timeout=5)
    assert not out.retry and "builtins.ConnectionError" in out.error_types and out.retryable
    out = await run_task(reg.register(breaks, name="b2"), [1], {}, timeout=5)
    assert out.error["type"] == "InvalidArguments" and not out.retryable


async def test_process_runner_kills_a_task_at_its_limit_and_keeps_serving() -> None:
    reg = TaskRegistry()
    spin = reg.register(_spin, name="spin", process=True)
    runner = ProcessRunner(1)
    try:
        t0 = time.monotonic()
        out = await run_task(spin, [60], {}, timeout=1.0, processes=runner)
        assert out.error["type"] == "TimeLimitExceeded"
        assert "yadtq_app.errors.TimeLimitExceeded" in out.error_types
        assert time.monotonic() - t0 < 20
        out = await run_task(spin, [0.01], {}, timeout=30, processes=runner)
        assert out.ok and out.result != os.getpid()  # it ran in another process
        out = await run_task(reg.register(_raise, name="raise", process=True), [], {}, timeout=30, processes=runner)
        assert out.error["type"] == "KeyError" and "builtins.LookupError" in out.error_types
    finally:
        runner.close()


def _spin(seconds: float) -> int:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return os.getpid()


def _raise() -> None:
    raise KeyError("missing")


def test_a_retry_or_cancel_request_read_again_does_nothing_to_a_later_generation() -> None:
    # Events are read again after a crash or a rebalance (from the committed offset): a
    # retry asked of generation 0, read again after the retried run failed, must not
    # start a third run, nor a cancel of generation 0 end generation 1.
    failed = fold(ev("processing", attempt=1, worker="w1"), ev("failed", attempt=1, worker="w1", error={"type": "E"}))
    retry = ev("requeue", at=9.0, generation=0)
    retried = fold(retry, state=failed)
    assert (retried.status, retried.generation) == ("queued", 1)
    failed_again = fold(ev("processing", attempt=2, worker="w2", at=10.0),
                        ev("failed", attempt=2, worker="w2", at=11.0, error={"type": "E", "message": "y"}),
                        state=retried)
    assert failed_again.status == "failed" and failed_again.generation == 1
    assert fold(retry, state=failed_again) == failed_again
    assert fold(ev("cancel", at=12.0, generation=0), state=retried) == retried
    assert fold(ev("cancel", at=12.0, generation=1), state=retried).status == "cancelled"
    assert fold(ev("requeue", at=13.0), state=failed_again).generation == 2  # no generation: as before
