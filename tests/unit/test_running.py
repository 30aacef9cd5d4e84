"""What runs on a worker (yadtq_app.running.RunningTasks): one record per task id."""

from __future__ import annotations

import asyncio

from yadtq_app.records import TaskEvent, TaskRequest
from yadtq_app.running import Attempt, RunningTasks, Slots

T1 = TaskRequest(id="t1", task="t")


def attempt(number: int = 1, partition: int = 3) -> Attempt:
    return Attempt(T1, number, 100.0, partition)


async def test_messages_with_one_id_are_handled_one_at_a_time() -> None:
    running = RunningTasks()
    inside: list[int] = []
    overlaps = 0

    async def handle(n: int) -> None:
        nonlocal overlaps
        async with running.handling(T1):
            overlaps += bool(inside)
            inside.append(n)
            await asyncio.sleep(0.01)
            inside.remove(n)

    async with running.handling(T1):
        assert running.busy("t1") and not running.busy("t2")
        waiting = [asyncio.ensure_future(handle(n)) for n in range(3)]
        await asyncio.sleep(0.02)
        assert not any(w.done() for w in waiting)  # all wait for the first
    await asyncio.gather(*waiting)
    assert overlaps == 0  # and then take turns, never two at once
    assert not running.busy("t1") and running._records == {}


async def test_an_attempt_stays_leasable_after_its_job_until_it_ends() -> None:
    running = RunningTasks()
    job = asyncio.ensure_future(asyncio.sleep(0))
    running.add("t1", job, attempt())
    assert "t1" in running and len(running) == 1
    assert running.attempts() == {"t1": attempt()} and running.attempt("t2") is None
    await job
    running.remove("t1", job)
    assert "t1" not in running and len(running) == 0
    assert running.attempt("t1") == attempt()  # its outcome is not recorded yet: still leased
    running.end("t1")
    assert running.attempts() == {} and running._records == {}


async def test_a_stale_job_does_not_remove_the_current_one() -> None:
    running = RunningTasks()
    old, new = asyncio.ensure_future(asyncio.sleep(10)), asyncio.ensure_future(asyncio.sleep(10))
    running.add("t1", old, attempt(1))
    running.cancel("t1")
    running.add("t1", new, attempt(2))
    assert not running.was_cancelled("t1")  # a new attempt starts uncancelled
    running.remove("t1", old)
    assert "t1" in running and running.attempt("t1") == attempt(2)
    assert running.cancel("t1") and running.was_cancelled("t1")
    running.forget("t1")
    assert not running.was_cancelled("t1")
    for job in (old, new):
        try:
            await job
        except asyncio.CancelledError:
            pass


async def test_a_held_start_keeps_the_record_until_taken() -> None:
    running = RunningTasks()
    start = TaskEvent(id="t1", kind="processing", task="t", attempt=1)
    async with running.handling(T1):
        running.defer_start("t1", lambda: start)
    assert running.unrecorded_start("t1") is start  # the handling ended; the start is still held
    assert running.take_start("t1") is start and running._records == {}


async def test_a_claimed_message_waits_as_its_request_until_its_attempt_starts() -> None:
    running = RunningTasks()
    assert running.claim(T1) and not running.claim(T1)  # one message per id
    assert running.waiting("t1") is T1
    job: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    running.add("t1", job, attempt())
    assert running.waiting("t1") is None  # started: its row tells
    running.remove("t1", job)
    running.end("t1")
    running.release("t1")
    assert not running.busy("t1") and running.claim(T1)


async def test_slots_are_shared_and_a_waiter_gives_up_when_told() -> None:
    slots = Slots(2)
    assert slots.take(5) == 2 and slots.take(1) == 0
    freed = slots.freed()
    assert not freed.done()
    slots.release()
    assert freed.done() and slots.take(3) == 1
    stop = False
    entered: list[bool] = []

    async def one() -> None:
        async with slots.one(give_up=lambda: stop) as got:
            entered.append(got)

    waiter = asyncio.ensure_future(one())
    await asyncio.sleep(0.01)
    assert entered == []  # no slot free: it waits
    stop = True
    slots.wake_all()
    await asyncio.wait_for(waiter, 5)
    assert entered == [False] and slots.take(1) == 0  # gave up, holding none
    slots.release()
    async with slots.one(give_up=lambda: False) as got:
        assert got and slots.take(1) == 0
    assert slots.take(1) == 1
