"""The plain ``def`` tasks of a batch, run together: :func:`run_batch`.

This is the path of most tasks: a plain ``def`` task, not ordered, whose status row
says run it now. It does what :func:`agents.tasks.run_attempt` does for one message
(decide from the row, register the attempt where cancels and leases find it, hold its
``processing`` event, run it in the worker's threads under its time limit, record its
outcome), but once per batch where that is possible: one timer for a wave's held
starts, one wake-up for any number of calls that ended, and for a wave of quick calls
a short wait on the spot instead (:func:`_wait_if_quick`). Each call takes one of the
worker's :data:`slots`, so no more than ``YADTQ_CONCURRENCY`` attempts run at once,
whichever path runs them. ``docs/tasks.md`` (batches) has the design.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import heapq
import logging
import time
import weakref
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional

from faust.streams import _current_event
from faust.types import EventT

from yadtq_app.agents.attempts import Opened, close_attempt, open_attempt, track_attempt
from yadtq_app.agents.outcomes import finish_attempt
from yadtq_app.agents.ownership import holds_current, still_ours
from yadtq_app.agents.reporting import START_RECORD_DELAY, event_for, write_held_start
from yadtq_app.application import app, settings
from yadtq_app.errors import RecordWriteError
from yadtq_app.execution import (
    Outcome,
    invalid_arguments,
    is_quick,
    mark_slow,
    outcome_of,
    start_in_thread,
    time_limit,
)
from yadtq_app.records import PROCESSING, TaskRequest, TaskState
from yadtq_app.registry import TaskDef
from yadtq_app.running import Slots
from yadtq_app.state import RUN, decide, leased_by_another
from yadtq_app.tables.task_status import get_status

__all__ = ["Call", "batchable", "run_batch", "set_current", "slots"]

logger = logging.getLogger(__name__)

#: The attempts this worker may still start (``YADTQ_CONCURRENCY`` in all).
slots = Slots(settings.concurrency)
#: The longest the event loop's thread blocks for a wave of quick calls (s): eight calls
#: of :data:`~yadtq_app.execution.QUICK_CALL` one after another fit in it.
QUICK_WAVE_WAIT = 0.001


def set_current(event: EventT[Any]) -> None:
    """Make ``event`` the current event (:func:`faust.current_event`) of this context, as
    Faust's stream does for the event it yields: the ownership checks and the tables
    read the current event's partition."""
    _current_event.set(weakref.ref(event))


def batchable(taskdef: TaskDef, request: TaskRequest) -> bool:
    """Whether :func:`run_batch` may run ``request``: a plain ``def`` task in a thread,
    not ordered (a sequenced task's turn passes on when it ends: :mod:`agents.ordering`)."""
    return not taskdef.is_async and not taskdef.process and request.ordering_key is None


@dataclass(eq=False)
class Call:
    """One task message of a batch, and its attempt once it starts."""

    event: EventT[Any]
    request: TaskRequest
    taskdef: TaskDef
    state: Optional[TaskState] = None
    #: Its attempt, once started (:func:`agents.attempts.open_attempt`).
    opened: Optional[Opened] = None
    #: When the attempt meets its time limit (the loop's clock).
    deadline: float = 0.0
    future: Optional["asyncio.Future[Any]"] = None
    #: The outcome known before the call ran (arguments that do not fit).
    outcome: Optional[Outcome] = None
    timed_out: bool = False

    @property
    def partition(self) -> int:
        return self.event.message.partition


async def run_batch(calls: list[Call], fallback: Callable[[Call], Awaitable[None]],
                    ack: Callable[[EventT[Any]], Awaitable[None]]) -> None:
    """Run each of ``calls`` (claimed with :meth:`~yadtq_app.running.RunningTasks.claim`)
    once a slot is free, record its outcome and ``ack`` its message; a call whose
    status row says anything but "run it now" (wait on a lease, skip, defer, cancel)
    goes to ``fallback`` with its claim released, and is acked after it. Returns when
    every call has ended."""
    await _BatchRun(calls, fallback, ack).run()


class _BatchRun:
    """The state of one :func:`run_batch`: calls waiting for a slot, calls running, and
    what wakes it (a call ending, a time limit, a slot freed elsewhere)."""

    def __init__(self, calls: list[Call], fallback: Callable[[Call], Awaitable[None]],
                 ack: Callable[[EventT[Any]], Awaitable[None]]) -> None:
        self.loop = asyncio.get_running_loop()
        self.waiting = collections.deque(calls)
        self.running: dict["asyncio.Future[Any]", Call] = {}
        self.ended: collections.deque[Call] = collections.deque()
        self.deadlines: list[tuple[float, int, Call]] = []  # a heap; ended calls are dropped lazily
        self.fallback = fallback
        self.ack = ack
        self.handed: list["asyncio.Future[None]"] = []
        self._wake: Optional["asyncio.Future[None]"] = None

    async def run(self) -> None:
        try:
            while self.waiting or self.running:
                if self.waiting and (app.revoking or app.stopping):
                    await self._give_up_waiting()
                if self.waiting:
                    taken = slots.take(len(self.waiting))
                    if taken:
                        await self._start([self.waiting.popleft() for _ in range(taken)])
                await self._settle()
            if self.handed:
                await asyncio.gather(*self.handed)
        except BaseException:
            for task in self.handed:
                task.cancel()
            self._abandon()
            raise

    async def _alone(self, call: Call) -> None:
        await self.fallback(call)
        await self.ack(call.event)

    async def _start(self, wave: list[Call]) -> None:
        """Start the calls of ``wave``, one slot each is taken already."""
        for call in wave:
            set_current(call.event)
            if not holds_current():
                await still_ours()  # waits while the worker is frozen; checked again below
        # Nothing is awaited from here until every call is registered: a cancel folded
        # from its status row's read on finds the attempt in app.running.
        started: list[Call] = []
        left: list[EventT[Any]] = []
        for call in wave:
            set_current(call.event)
            if app.stopping or not holds_current():
                logger.info("task %s: partition moved before the attempt started; leaving it to its owner",
                            call.request.id)
                _release(call)
                left.append(call.event)
                continue
            if not _begin(call, self.loop):
                _release(call)
                self.handed.append(asyncio.ensure_future(self._alone(call)))
                continue
            assert call.future is not None
            self.running[call.future] = call
            heapq.heappush(self.deadlines, (call.deadline, id(call), call))
            call.future.add_done_callback(self._on_done)
            started.append(call)
        if started:
            _wait_if_quick(started)
            self.loop.call_later(START_RECORD_DELAY, _write_starts, started)
        for event in left:
            await self.ack(event)  # its ack does not count (a rebalance) or cannot be committed (evicted)

    async def _give_up_waiting(self) -> None:
        """A rebalance began, or the worker is stopping: the calls not started are left
        to be read again by their partitions' owners (acked: such an ack does not
        count), so that neither need wait for them."""
        left, self.waiting = self.waiting, collections.deque()
        for call in left:
            logger.info("task %s: not started before a rebalance or a stop; leaving it to be read again",
                        call.request.id)
            app.running.release(call.request.id)
        for call in left:
            await self.ack(call.event)

    def _on_done(self, future: "asyncio.Future[Any]") -> None:
        call = self.running.pop(future, None)
        if call is not None:
            self.ended.append(call)
            self._wake_up()

    def _wake_up(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _settle(self) -> None:
        """Wait until a call ends, meets its time limit, or (none running) a slot is
        freed elsewhere; record the outcome of every call that ended."""
        if not self.ended:
            for future in [future for future in self.running if future.done()]:
                self._on_done(future)  # handed over by a wait (_wait_if_quick): its callback finds nothing
        if not self.ended:
            if not self.running:
                if self.waiting:
                    await slots.freed()  # also woken when Faust waits for what is processed
                return
            if self.waiting:
                slots.freed().add_done_callback(lambda _: self._wake_up())
            while self.deadlines and self.deadlines[0][2].future not in self.running:
                heapq.heappop(self.deadlines)
            self._wake = self.loop.create_future()
            timer = self.loop.call_at(self.deadlines[0][0], self._wake_up) if self.deadlines else None
            try:
                await self._wake
            finally:
                self._wake = None
                if timer is not None:
                    timer.cancel()
            now = self.loop.time()
            while self.deadlines and self.deadlines[0][0] <= now:
                _, _, call = heapq.heappop(self.deadlines)
                if call.future in self.running and not call.future.done():
                    call.timed_out = True
                    call.future.cancel()  # not started: it never will; started: its thread is abandoned
        while self.ended:
            call = self.ended.popleft()
            await _finish(call)
            await self.ack(call.event)

    def _abandon(self) -> None:
        """The batch was cancelled (the worker is stopping): its attempts are not
        recorded as ended and their messages are read again; give back what they held."""
        for future, call in list(self.running.items()) + [(c.future, c) for c in self.ended]:
            assert future is not None
            future.remove_done_callback(self._on_done)
            future.cancel()
            assert call.opened is not None
            close_attempt(call.opened, future)
            app.running.drop_start(call.request.id)  # never started, as far as the table knows
            app.running.end(call.request.id)
            _release(call)
        self.running.clear()
        self.ended.clear()
        for call in self.waiting:
            app.running.release(call.request.id)
        self.waiting.clear()


def _begin(call: Call, loop: asyncio.AbstractEventLoop) -> bool:
    """Decide from the status row and, if it says run now, start the attempt; False
    (nothing started) otherwise."""
    request = call.request
    state = get_status(request.id)
    decision = decide(state, request, finished=app.finished.get(request.id), now=time.time(),
                      worker=settings.worker_id)
    if decision.action != RUN or (state is not None and leased_by_another(state, settings.worker_id)):
        return False  # agents.tasks.execute waits on the lease, skips, defers or cancels
    call.state = state
    opened = call.opened = open_attempt(request, call.taskdef, decision.attempt, state, loop)
    call.deadline = loop.time() + opened.timeout
    try:
        call.future = start_in_thread(call.taskdef, list(request.task_args), dict(request.task_kwargs),
                                      threads=app.threads, context=opened.context)
    except TypeError as exc:
        call.outcome = invalid_arguments(call.taskdef, exc)
        call.future = loop.create_future()
        call.future.set_result(None)
    track_attempt(opened, call.future, call.partition)
    app.running.defer_start(request.id, functools.partial(event_for, request, PROCESSING, attempt=opened.attempt,
                                                          state=state, at=opened.started))
    return True


def _wait_if_quick(wave: list[Call]) -> None:
    """If every call of ``wave`` is of a quick task (:func:`~yadtq_app.execution.is_quick`),
    block for them, at most :data:`QUICK_WAVE_WAIT`, so that their outcomes come back
    without a trip through the event loop's selector; a task whose call is still running
    then counts as slow."""
    if not all(is_quick(call.taskdef) for call in wave):
        return
    if not app.threads.wait([call.future for call in wave if call.future is not None], QUICK_WAVE_WAIT):
        for call in wave:
            if call.future is not None and not call.future.done():
                mark_slow(call.taskdef)


def _write_starts(calls: list[Call]) -> None:
    """Write the held start of every call of a wave still running."""
    for call in calls:
        if call.future is not None and not call.future.done() and call.opened is not None:
            set_current(call.event)
            write_held_start(call.request.id, call.opened.attempt)


async def _finish(call: Call) -> None:
    """Record how ``call``'s attempt ended and give back its slot and claim."""
    request, opened = call.request, call.opened
    assert call.future is not None and opened is not None
    set_current(call.event)
    slots.release()
    close_attempt(opened, call.future)
    outcome: Optional[Outcome]
    if call.timed_out:
        outcome = time_limit(call.taskdef, opened.timeout)
    elif call.future.cancelled():
        outcome = None  # a cancel reached it (app.running.cancel)
    else:
        outcome = call.outcome or outcome_of(call.taskdef, call.future, max_result_bytes=settings.max_result_bytes)
    try:
        await finish_attempt(request, call.taskdef, opened.attempt, call.state, opened.options, outcome,
                             opened.started)
    except RecordWriteError as exc:
        app.fatal(f"task {request.id}: {exc}")
    except Exception:
        logger.exception("worker %s: error recording the end of task %s", settings.worker_id, request.id)
    finally:
        app.running.end(request.id)  # leased until its outcome is recorded
        app.running.release(request.id)


def _release(call: Call) -> None:
    """Give back the slot and claim of a call that does not start here."""
    slots.release()
    app.running.release(call.request.id)
