"""Submissions whose ``queued`` row is held back: kept in memory for a moment instead of
written, so a task that runs soon gets one status row write instead of two.

The status agent (:func:`agents.status.record_status`) holds the ``queued`` events of
a record it reads instead of folding them, when the task has no row yet. A held event
counts as the task's row for every read (``tables.task_status.get_status``) and for the
next fold of the task (``agents.status._fold`` takes it and writes it with that event:
usually the attempt's outcome). Whatever is still held after ``YADTQ_QUEUED_HOLD`` seconds is
written as it would have been at once.

The events record stays unacknowledged while any of its events is held (an extra
reference on its Faust message), so the events topic is not committed past it: a
worker that dies with events held leaves them to the partition's next owner, which
reads the record again. A rebalance or a stop lets go of everything held and holds
nothing more (:meth:`HeldSubmissions.close`, while acks do not count: Faust waits for
every unacknowledged record before it rejoins or stops, so a record held then would
never let it) until the next assignment (:meth:`HeldSubmissions.reopen`); the records
let go of are read again. Why: ``docs/tasks.md`` ("Held queued rows").
"""

from __future__ import annotations

import collections
import contextvars
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

from .records import TaskEvent, TaskState
from .state import apply_event

__all__ = ["HeldSubmissions", "HeldRecord", "MAX_HELD"]

#: At most this many events held at once; past it, ``queued`` rows are written at once.
MAX_HELD = 10_000


@dataclass(eq=False)
class HeldRecord:
    """An events record with held events: acknowledged once none of them is held."""

    event: Any  # the Faust event the status agent read (its message carries our reference)
    context: contextvars.Context  # the agent's context while it read it (Faust's current event)
    since: float
    ids: list[str] = field(default_factory=list)
    held: int = 0


class HeldSubmissions:
    """The ``queued`` events held on this worker for up to ``hold`` seconds, by task id
    (none with ``hold`` 0).

    ``hold`` takes an extra reference on the record's Faust message; the reference is
    given back (``release``: an ack) when the last of its events is taken or dropped.
    Closed (nothing held, nothing more holdable) from :meth:`close` to :meth:`reopen`.
    """

    def __init__(self, hold: float, limit: int = MAX_HELD,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.hold_for = hold
        self.limit = limit if hold > 0 else 0
        self.clock = clock
        self._held: dict[str, tuple[TaskEvent, HeldRecord]] = {}
        self._rows: dict[str, TaskState] = {}  # the rows of held events, once asked for
        self._records: collections.deque[HeldRecord] = collections.deque()  # oldest first
        self.closed = False

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._held

    def has_room(self, n: int) -> bool:
        """Whether ``n`` more events may be held (none while closed)."""
        return not self.closed and len(self._held) + n <= self.limit

    def get(self, task_id: str) -> Optional[TaskEvent]:
        """The held ``queued`` event of ``task_id``, if any (it stays held)."""
        item = self._held.get(task_id)
        return item[0] if item is not None else None

    def row(self, task_id: str) -> Optional[TaskState]:
        """The row ``task_id``'s held event stands for, if any (built once; callers
        must not change it, as :func:`~yadtq_app.state.apply_event` never does)."""
        row = self._rows.get(task_id)
        if row is None:
            item = self._held.get(task_id)
            if item is None:
                return None
            row = self._rows[task_id] = apply_event(None, item[0])
        return row

    def take_row(self, task_id: str) -> Optional[TaskState]:
        """:meth:`row`, no longer held (the caller writes it now)."""
        row = self.row(task_id)
        if row is not None:
            self.take(task_id)
        return row

    def hold(self, record: Any, events: list[TaskEvent]) -> bool:
        """Hold ``events`` (of tasks none of which is held) read in the Faust event
        ``record``, whose message is not acknowledged until they are all let go.

        Returns False, holding nothing and taking no reference, while closed: the
        caller writes them now.
        """
        if not events:
            return True
        if self.closed:
            return False
        held = HeldRecord(record, contextvars.copy_context(), self.clock())
        record.message.incref()
        for event in events:
            self._held[event.id] = (event, held)
            held.ids.append(event.id)
        held.held = len(events)
        self._records.append(held)
        return True

    def take(self, task_id: str) -> Optional[TaskEvent]:
        """Stop holding ``task_id``'s event and return it (the caller writes it now)."""
        item = self._held.pop(task_id, None)
        if item is None:
            return None
        self._rows.pop(task_id, None)
        event, held = item
        held.held -= 1
        if held.held == 0:
            _release(held)
        return event

    def due(self) -> Iterator[tuple[HeldRecord, list[TaskEvent]]]:
        """The records held for :attr:`hold_for` seconds or more, each with its events
        still held, oldest first (a snapshot: the caller takes each event)."""
        deadline = self.clock() - self.hold_for
        records = self._records
        while records and records[0].held == 0:
            records.popleft()
        out = []
        for held in records:
            if held.since > deadline:
                break
            events = [item[0] for item in (self._held.get(i) for i in held.ids) if item is not None and item[1] is held]
            if events:
                out.append((held, events))
        return iter(out)

    def close(self) -> int:
        """Let go of every held event unwritten and hold nothing more until
        :meth:`reopen` (a rebalance or a stop has begun: acks no longer count, so their
        records are read again); how many there were."""
        self.closed = True
        n = len(self._held)
        records, self._records = self._records, collections.deque()
        self._held.clear()
        self._rows.clear()
        for held in records:
            if held.held > 0:
                held.held = 0
                _release(held)
        return n

    def reopen(self) -> None:
        """Hold again (partitions are assigned: acks count again)."""
        self.closed = False


def _release(held: HeldRecord) -> None:
    """Give back the reference :meth:`HeldSubmissions.hold` took (the record's ack, if
    the agent has acknowledged it already)."""
    held.event.ack()
