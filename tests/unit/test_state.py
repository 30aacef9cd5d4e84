"""Folding task events into status rows (yadtq_app.state.apply_event)."""

from __future__ import annotations

import itertools
from typing import Any, Optional

import pytest

from yadtq_app.records import TaskEvent, TaskState
from yadtq_app.state import apply_event, leased_by_another
from yadtq_app.worker_memory import WorkerStats


def ev(kind: str, **kw: Any) -> TaskEvent:
    kw.setdefault("task", "multiply")
    kw.setdefault("task_args", [4, 5])
    return TaskEvent(id="t1", kind=kind, **kw)


QUEUED = ev("queued", at=1.0, submitted_at=1.0)
PROC1 = ev("processing", attempt=1, worker="w1", at=2.0)
SUCCESS = ev("success", attempt=1, worker="w1", at=3.0, result=20)
FAILED = ev("failed", attempt=1, worker="w1", at=3.0, error={"type": "ZeroDivisionError", "message": "x"})


def fold(*events: TaskEvent, state: Optional[TaskState] = None) -> Optional[TaskState]:
    for e in events:
        state = apply_event(state, e)
    return state


def test_in_order_lifecycle() -> None:
    s = apply_event(None, QUEUED)
    assert (s.id, s.task, s.status, s.task_args, s.submitted_at, s.attempts) == ("t1", "multiply", "queued",
                                                                                  [4, 5], 1.0, 0)
    s = apply_event(s, PROC1)
    assert (s.status, s.attempts, s.worker, s.started_at) == ("processing", 1, "w1", 2.0)
    s = apply_event(s, SUCCESS)
    assert (s.status, s.result, s.error, s.started_at, s.finished_at) == ("success", 20, None, 2.0, 3.0)
    assert s.submitted_at == 1.0


def test_processing_before_queued_stays_processing_and_fills_submitted_at() -> None:
    s = fold(PROC1)
    assert s.status == "processing" and s.submitted_at is None
    s = apply_event(s, QUEUED)
    assert s.status == "processing"
    assert s.submitted_at == 1.0
    assert (s.worker, s.attempts, s.started_at) == ("w1", 1, 2.0)


def test_queued_does_not_overwrite_an_existing_submitted_at() -> None:
    s = fold(ev("queued", submitted_at=1.0), ev("queued", submitted_at=9.0))
    assert s.submitted_at == 1.0


@pytest.mark.parametrize("later", [FAILED, ev("processing", attempt=2, worker="w2", at=5.0), QUEUED,
                                   ev("success", attempt=2, worker="w2", at=6.0, result=99)])
def test_terminal_success_never_changes(later: TaskEvent) -> None:
    s = fold(QUEUED, PROC1, SUCCESS)
    after = apply_event(s, later)
    assert after.to_json() == s.to_json()
    assert after.status == "success" and after.result == 20


def test_terminal_failed_never_changes() -> None:
    s = fold(QUEUED, PROC1, FAILED)
    after = fold(SUCCESS, ev("processing", attempt=5, worker="w9", at=9.0), state=s)
    assert after.to_json() == s.to_json()


def test_failed_keeps_error_and_clears_result() -> None:
    s = fold(QUEUED, PROC1, FAILED)
    assert s.status == "failed"
    assert s.result is None
    assert s.error == {"type": "ZeroDivisionError", "message": "x"}
    assert s.finished_at == 3.0


def test_stale_lower_attempt_processing_is_ignored() -> None:
    s = fold(QUEUED, ev("processing", attempt=2, worker="w2", at=5.0))
    after = apply_event(s, ev("processing", attempt=1, worker="w1", at=6.0))
    assert (after.attempts, after.worker, after.started_at) == (2, "w2", 5.0)


def test_higher_attempt_processing_replaces_worker() -> None:
    s = fold(QUEUED, PROC1, ev("processing", attempt=2, worker="w2", at=5.0))
    assert (s.status, s.attempts, s.worker, s.started_at) == ("processing", 2, "w2", 5.0)


def test_success_without_processing_sets_started_at() -> None:
    s = fold(QUEUED, SUCCESS)
    assert (s.status, s.started_at, s.finished_at, s.attempts, s.worker) == ("success", 3.0, 3.0, 1, "w1")


def test_an_outcome_carries_the_start_that_was_not_recorded() -> None:
    # The executing worker writes no processing row for a task that finishes quickly.
    s = fold(QUEUED, ev("success", attempt=1, worker="w1", at=3.0, started_at=2.5, result=20))
    assert (s.status, s.started_at, s.finished_at, s.attempts, s.worker) == ("success", 2.5, 3.0, 1, "w1")
    assert s.history[-1]["started_at"] == 2.5
    # With the start recorded, the outcome agrees with it.
    s = fold(QUEUED, PROC1, ev("success", attempt=1, worker="w1", at=3.0, started_at=2.0, result=20))
    assert (s.started_at, s.finished_at) == (2.0, 3.0)


def test_a_lost_workers_report_on_a_rerun_attempt_of_the_same_number_is_fenced() -> None:
    # w1 started attempt 1 but froze before recording it; w0 (the partition's new owner)
    # runs the task again, also as attempt 1, and records its start.
    rerun = fold(QUEUED, ev("processing", attempt=1, worker="w0", at=5.0))
    for late in (ev("failed", attempt=1, worker="w1", at=6.0, error={"type": "X", "message": "x"}),
                 ev("retrying", attempt=1, worker="w1", at=6.0, next_run_at=9.0),
                 ev("success", attempt=1, worker="w1", at=6.0, result=1),
                 ev("progress", attempt=1, worker="w1", at=6.0, progress={"fraction": 0.5}),
                 ev("processing", attempt=1, worker="w1", at=6.0)):
        assert fold(late, state=rerun) == rerun, late.kind
    done = fold(ev("success", attempt=1, worker="w0", at=7.0, result=20), state=rerun)
    assert (done.status, done.worker, done.result) == ("success", "w0", 20)


def test_the_new_owner_completes_a_cancel_of_its_dead_workers_attempt() -> None:
    running = fold(QUEUED, PROC1, ev("cancel", at=2.5))
    assert running.cancel_requested and running.worker == "w1"
    s = fold(ev("cancelled", attempt=1, worker="w2", at=3.0, error={"type": "TaskCancelled", "message": "c"}),
             state=running)
    assert s.status == "cancelled"


def test_running_tasks_hold_an_unrecorded_start() -> None:
    from yadtq_app.running import RunningTasks

    running = RunningTasks()
    assert running.unrecorded_start("t1") is None and running.take_start("t1") is None
    made = []

    def make() -> TaskEvent:
        made.append(1)
        return PROC1

    running.defer_start("t1", make)
    assert made == []  # built only when needed
    assert running.unrecorded_start("t1") is PROC1  # peeking keeps it held
    assert running.take_start("t1") is PROC1
    assert made == [1]
    assert running.unrecorded_start("t1") is None and running.take_start("t1") is None
    running.defer_start("t2", make)
    running.drop_start("t2")
    assert running.take_start("t2") is None and made == [1]  # dropped unbuilt


def test_unknown_kind_raises() -> None:
    with pytest.raises(ValueError, match="bogus"):
        apply_event(None, ev("bogus"))
    with pytest.raises(ValueError):
        apply_event(fold(QUEUED), ev("done"))


def test_input_row_is_not_mutated() -> None:
    queued = fold(QUEUED)
    before = queued.to_json()
    processing = apply_event(queued, PROC1)
    assert processing is not queued
    assert queued.status == "queued" and queued.worker is None and queued.attempts == 0
    done = apply_event(processing, SUCCESS)
    assert processing.status == "processing" and processing.result is None
    assert done.status == "success"
    assert queued.to_json() == before


def test_input_row_not_mutated_when_filling_submitted_at() -> None:
    proc = fold(PROC1)
    apply_event(proc, QUEUED)
    assert proc.submitted_at is None


@pytest.mark.parametrize("order", list(itertools.permutations([QUEUED, PROC1, SUCCESS])),
                         ids=lambda o: ">".join(e.kind for e in o))
def test_every_order_ends_success(order: tuple[TaskEvent, ...]) -> None:
    s = fold(*order)
    assert s.status == "success"
    assert s.result == 20 and s.error is None
    assert s.submitted_at == 1.0
    assert s.finished_at == 3.0 and s.attempts == 1 and s.worker == "w1"


@pytest.mark.parametrize("order", list(itertools.permutations([QUEUED, PROC1, FAILED, SUCCESS])))
def test_first_terminal_event_wins(order: tuple[TaskEvent, ...]) -> None:
    first_terminal = next(e for e in order if e.kind in ("success", "failed"))
    assert fold(*order).status == first_terminal.kind


def test_worker_stats_counts_invalid_reasons() -> None:
    stats = WorkerStats()
    for reason in ("not-json", "empty", "not-json"):
        stats.count_invalid(reason)
    assert stats.invalid_messages == {"not-json": 2, "empty": 1}


def _row(status: str, attempts: int) -> "TaskState":
    from yadtq_app.records import TaskState

    return TaskState(id="t", task="x", status=status, attempts=attempts)


def test_merge_rows_never_lets_a_stale_version_win() -> None:
    from itertools import permutations

    from yadtq_app.state import merge_rows

    versions = [_row("queued", 0), _row("processing", 1), _row("processing", 2), _row("success", 2)]
    for order in permutations(versions):
        current = None
        for v in order:
            current = merge_rows(current, v)
        assert current is not None and (current.status, current.attempts) == ("success", 2), order


def test_merge_rows_prefers_final_at_same_attempt_and_takes_the_later_on_ties() -> None:
    from yadtq_app.state import merge_rows

    assert merge_rows(_row("processing", 1), _row("failed", 1)).status == "failed"
    assert merge_rows(_row("success", 1), _row("processing", 1)).status == "success"
    a, b = _row("success", 1), _row("success", 1)
    assert merge_rows(a, b) is b
    assert merge_rows(None, a) is a


async def test_finish_waiters_wake_only_their_task_and_forget_ended_waits() -> None:
    import asyncio

    from yadtq_app.worker_memory import FinishWaiters

    waiters = FinishWaiters()
    a = asyncio.ensure_future(waiters.wait("a", 5))
    b = asyncio.ensure_future(waiters.wait("b", 5))
    a2 = asyncio.ensure_future(waiters.wait("a", 5))
    await asyncio.sleep(0)
    assert len(waiters) == 3
    waiters.wake("a")
    assert await a is True and await a2 is True
    assert not b.done() and len(waiters) == 1
    assert await waiters.wait("c", 0.01) is False  # nobody woke it: the wait ran out
    waiters.wake_all()
    assert await b is True
    assert len(waiters) == 0 and waiters._waiting == {}
    waiters.wake("nobody-waits")  # nothing to do


async def test_a_woken_wait_returns_on_the_next_turn_of_the_loop() -> None:
    """The end of a long poll is the end of a round trip: no turn of the loop between
    the wake and the waiting request (``asyncio.wait_for`` adds one)."""
    import asyncio

    from yadtq_app.worker_memory import FinishWaiters

    waiters = FinishWaiters()
    waiting = asyncio.ensure_future(waiters.wait("a", 5))
    await asyncio.sleep(0)
    waiters.wake("a")
    await asyncio.sleep(0)
    assert waiting.done() and waiting.result() is True


def test_an_outcome_too_large_to_record_becomes_a_failure_without_its_result() -> None:
    from yadtq_app.state import unrecordable_outcome

    running = fold(QUEUED, PROC1)
    row = apply_event(running, unrecordable_outcome(SUCCESS, "row is 2000000 bytes"))
    assert row.status == "failed" and row.result is None and row.task_args == [4, 5]
    assert row.error == {"type": "RecordTooLarge", "traceback": None,
                         "message": "the task's outcome could not be recorded: row is 2000000 bytes"}
    assert row.history[-1]["status"] == "failed" and row.attempts == 1


def test_history_keeps_a_bounded_message_per_attempt() -> None:
    from yadtq_app.state import MAX_HISTORY_MESSAGE

    row = fold(QUEUED, PROC1, FAILED.derive(error={"type": "E", "message": "m" * 10_000}))
    assert len(row.history[-1]["error"]["message"]) == MAX_HISTORY_MESSAGE + 1
    assert len(row.error["message"]) == 10_000  # the row's own error is bounded where it is made


def test_a_lease_holds_off_only_other_workers_and_only_while_processing() -> None:
    leased = TaskState(id="t", task="add", status="processing", worker="w1", lease_until=100.0)
    assert leased_by_another(leased, "w2") and not leased_by_another(leased, "w1")
    unleased = TaskState(id="t", task="add", status="processing", worker="w1")
    done = TaskState(id="t", task="add", status="success", worker="w1", lease_until=100.0)
    assert not leased_by_another(unleased, "w2") and not leased_by_another(done, "w2")


def test_a_queued_event_reads_scheduled_only_while_its_eta_is_ahead() -> None:
    from yadtq_app.wire import task_request_from_json

    request = task_request_from_json({"task-id": "q-1", "task": "add", "args": [1, 2], "eta": 1_000.0})
    ahead = apply_event(None, TaskEvent.queued(request, at=900.0))
    assert (ahead.status, ahead.next_run_at) == ("scheduled", 1_000.0)
    past = apply_event(None, TaskEvent.queued(request, at=1_100.0))  # e.g. found unread after its eta
    assert (past.status, past.next_run_at) == ("queued", None)
    plain = apply_event(None, TaskEvent.queued(task_request_from_json({"task-id": "q-2", "task": "add"}), at=5.0))
    assert (plain.status, plain.task, plain.id) == ("queued", "add", "q-2")
