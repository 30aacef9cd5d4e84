"""What runs on this worker now: one record per task id (:class:`RunningTasks`).

A task id's record says whether a message for it is being handled (one at a time per
id), which attempt runs (what its lease names), the attempt's job (what a cancel
reaches), and its ``processing`` event while that is held back from the status table.
The record goes once none of these is left.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, NamedTuple, Optional, Union

from .records import TaskEvent, TaskRequest

__all__ = ["Attempt", "RunningTasks", "Slots"]


class Attempt(NamedTuple):
    """An attempt running on this worker, as its lease names it."""

    request: TaskRequest
    number: int
    started: float
    #: The task topic's partition its message came from (-1: not known).
    partition: int


#: A held ``processing`` event, or what builds it when it is first needed.
HeldStart = Union[TaskEvent, Callable[[], TaskEvent]]


@dataclass(eq=False)
class _Record:
    """What this worker has for one task id."""

    #: Set when the message being handled for the id is done (``None``: none is).
    handled: Optional[asyncio.Event] = None
    #: The attempt running, until its outcome is recorded.
    attempt: Optional[Attempt] = None
    #: The attempt's code while it runs.
    job: Optional[asyncio.Future[Any]] = None
    #: The request whose message is handled and whose attempt has not started.
    waiting: Optional[TaskRequest] = None
    #: Whether :meth:`RunningTasks.cancel` cancelled the job.
    cancelled: bool = False
    #: The attempt's ``processing`` event, not in the status table yet.
    start: Optional[HeldStart] = None

    def empty(self) -> bool:
        return self.handled is None and self.attempt is None and self.job is None and self.start is None


class RunningTasks:
    """The task ids this worker handles, their running attempts and held starts."""

    def __init__(self) -> None:
        self._records: dict[str, _Record] = {}
        #: Requests whose messages were read and not claimed yet (see :meth:`reading`).
        self._read: dict[str, TaskRequest] = {}

    def _record(self, task_id: str) -> _Record:
        record = self._records.get(task_id)
        if record is None:
            record = self._records[task_id] = _Record()
        return record

    def _prune(self, task_id: str, record: _Record) -> None:
        if record.empty() and self._records.get(task_id) is record:
            del self._records[task_id]

    # -- one message per id ---------------------------------------------------------
    def busy(self, task_id: str) -> bool:
        """Whether a message for ``task_id`` is being handled here."""
        record = self._records.get(task_id)
        return record is not None and record.handled is not None

    @contextlib.asynccontextmanager
    async def handling(self, request: TaskRequest) -> AsyncIterator[None]:
        """Handle a message for ``request``, once no other one for its id is handled here."""
        while (record := self._records.get(request.id)) is not None and record.handled is not None:
            await record.handled.wait()
        self.claim(request)
        try:
            yield
        finally:
            self.release(request.id)

    def reading(self, request: TaskRequest, done: bool = False) -> None:
        """Its message was read (``done``: and needs no claim after all): until a claim,
        :meth:`waiting` answers with it too."""
        if done:
            self._read.pop(request.id, None)
        else:
            self._read[request.id] = request

    def claim(self, request: TaskRequest) -> bool:
        """Begin handling a message for ``request`` without waiting; False (nothing
        claimed) if one for its id is handled already. Ends with :meth:`release`."""
        record = self._record(request.id)
        if record.handled is not None:
            return False
        record.handled = asyncio.Event()
        record.waiting = request
        self._read.pop(request.id, None)
        return True

    def release(self, task_id: str) -> None:
        """End what :meth:`claim` began: the next message for ``task_id`` may be handled."""
        record = self._records.get(task_id)
        if record is not None and record.handled is not None:
            record.handled.set()
            record.handled = None
            record.waiting = None
            self._prune(task_id, record)

    def waiting(self, task_id: str) -> Optional[TaskRequest]:
        """The request of ``task_id`` whose message is read or handled here and whose
        attempt has not started (it waits for a free slot, or for its status to catch up)."""
        record = self._records.get(task_id)
        if record is not None and record.attempt is None and record.waiting is not None:
            return record.waiting
        return self._read.get(task_id)

    # -- the attempt ----------------------------------------------------------------
    def add(self, task_id: str, job: asyncio.Future[Any], attempt: Optional[Attempt] = None) -> None:
        """``job`` runs ``attempt`` of ``task_id``: a cancel reaches it from now on."""
        record = self._record(task_id)
        record.job = job
        record.cancelled = False
        record.attempt = attempt
        record.waiting = None

    def remove(self, task_id: str, job: asyncio.Future[Any]) -> None:
        """``job`` ended: a cancel no longer reaches it (its attempt stays, see :meth:`end`)."""
        record = self._records.get(task_id)
        if record is not None and record.job is job:
            record.job = None
            self._prune(task_id, record)

    def end(self, task_id: str) -> None:
        """The attempt of ``task_id`` is over for its leases: its outcome is recorded,
        or it never started, or the worker is stopping."""
        record = self._records.get(task_id)
        if record is not None:
            record.attempt = None
            self._prune(task_id, record)

    def attempt(self, task_id: str) -> Optional[Attempt]:
        """The attempt of ``task_id`` running here, if any."""
        record = self._records.get(task_id)
        return record.attempt if record is not None else None

    def attempts(self) -> dict[str, Attempt]:
        """Every attempt running here, by task id."""
        return {task_id: r.attempt for task_id, r in self._records.items() if r.attempt is not None}

    def cancel(self, task_id: str) -> bool:
        """Cancel the running attempt of ``task_id``; False if none runs here."""
        record = self._records.get(task_id)
        job = record.job if record is not None else None
        if record is None or job is None or job.done():
            return False
        record.cancelled = True
        job.cancel()
        return True

    def was_cancelled(self, task_id: str) -> bool:
        """Whether the last attempt of ``task_id`` was cancelled by :meth:`cancel`."""
        record = self._records.get(task_id)
        return record is not None and record.cancelled

    def forget(self, task_id: str) -> None:
        """Forget that the attempt of ``task_id`` was cancelled."""
        record = self._records.get(task_id)
        if record is not None:
            record.cancelled = False

    def __len__(self) -> int:
        """The number of attempts whose code runs here."""
        return sum(1 for r in self._records.values() if r.job is not None)

    def __contains__(self, task_id: object) -> bool:
        record = self._records.get(task_id) if isinstance(task_id, str) else None
        return record is not None and record.job is not None

    # -- held starts ----------------------------------------------------------------
    def defer_start(self, task_id: str, make: Callable[[], TaskEvent]) -> None:
        """Hold the ``processing`` event of an attempt that just started; ``make``
        builds it, only if it is ever needed (most attempts end first, and their
        outcome records the start)."""
        self._record(task_id).start = make

    def take_start(self, task_id: str) -> Optional[TaskEvent]:
        """The held ``processing`` event of ``task_id``, no longer held (``None`` if none)."""
        record = self._records.get(task_id)
        if record is None or record.start is None:
            return None
        start, record.start = record.start, None
        self._prune(task_id, record)
        return start() if callable(start) else start

    def drop_start(self, task_id: str) -> None:
        """Hold the start of ``task_id`` no longer (its outcome records it, or it never began)."""
        record = self._records.get(task_id)
        if record is not None and record.start is not None:
            record.start = None
            self._prune(task_id, record)

    def unrecorded_start(self, task_id: str) -> Optional[TaskEvent]:
        """The held ``processing`` event of ``task_id``, if any (it stays held)."""
        record = self._records.get(task_id)
        if record is None or record.start is None:
            return None
        if callable(record.start):
            record.start = record.start()
        return record.start


class Slots:
    """How many more attempts may run on this worker (``YADTQ_CONCURRENCY`` in all),
    shared by every actor of the task agent; loop-bound, never thread-safe."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._free = size
        self._waiters: list[asyncio.Future[None]] = []

    def take(self, wanted: int) -> int:
        """Take up to ``wanted`` free slots at once; how many were taken (0 if none is free)."""
        taken = min(wanted, self._free)
        self._free -= taken
        return taken

    def release(self, count: int = 1) -> None:
        """Give back ``count`` slots, and wake whoever waits for one."""
        self._free += count
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def freed(self) -> "asyncio.Future[None]":
        """A future done once a slot is free (at once if one is)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._free > 0:
            waiter.set_result(None)
        else:
            self._waiters.append(waiter)
        return waiter

    def wake_all(self) -> None:
        """Wake whoever waits for a slot, to look again whether it should still wait."""
        self.release(0)

    @contextlib.asynccontextmanager
    async def one(self, give_up: Callable[[], bool]) -> AsyncIterator[bool]:
        """Hold one slot, waiting until one is free; yields False (holding none) if
        ``give_up()`` says so first, asked again at each :meth:`wake_all`."""
        while not self.take(1):
            if give_up():
                yield False
                return
            await self.freed()
        try:
            yield True
        finally:
            self.release()
