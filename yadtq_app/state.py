"""Pure status logic: fold a :class:`TaskEvent` into a :class:`TaskState`.

Statuses only move forward: ``queued`` → ``processing`` → ``success`` | ``failed``.
Events can arrive out of order (the ``queued`` event from the submitting worker may
land after the executing worker's ``processing``), so:

* a terminal row (``success``/``failed``) never changes again;
* ``queued`` never overwrites ``processing``; it only fills in what is missing;
* among ``processing`` events the higher attempt wins;
* **fencing**: an outcome (``success``/``failed``) from an attempt older than the
  row's is stale — a worker that was paused while its partition moved and another
  worker re-ran the task — and is ignored, so it cannot overwrite the newer attempt;
* the request fields (task, args, kwargs, submitted_at) are taken from whichever
  event carries them first.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional

from .records import FAILED, PROCESSING, QUEUED, SUCCESS, TERMINAL, TaskEvent, TaskState

__all__ = ["apply_event", "merge_rows", "RANK", "WorkerStats", "RecentlyFinished"]

RANK = {QUEUED: 0, PROCESSING: 1, SUCCESS: 2, FAILED: 2}


def apply_event(state: Optional[TaskState], event: TaskEvent) -> TaskState:
    """The row after ``event``; ``state`` is the row before it (``None`` if none)."""
    if event.kind not in RANK:
        raise ValueError(f"unknown event kind {event.kind!r}")
    if state is None:
        state = TaskState(id=event.id, task=event.task, status=QUEUED, task_args=list(event.task_args),
                          task_kwargs=dict(event.task_kwargs), submitted_at=event.submitted_at)
    else:
        state = state.derive()
        if state.submitted_at is None and event.submitted_at is not None:
            state.submitted_at = event.submitted_at

    if state.status in TERMINAL:
        return state
    if event.kind == QUEUED:
        return state
    if event.kind == PROCESSING:
        if state.status == PROCESSING and event.attempt < state.attempts:
            return state  # a stale attempt
        state.status = PROCESSING
        state.attempts = max(state.attempts, event.attempt)
        state.worker = event.worker
        state.started_at = event.at
        return state
    # success / failed
    if event.attempt < state.attempts:
        return state  # fenced: a stale attempt's outcome
    state.status = event.kind
    state.attempts = max(state.attempts, event.attempt)
    state.worker = event.worker
    if state.started_at is None:
        state.started_at = event.at
    state.finished_at = event.at
    if event.kind == SUCCESS:
        state.result, state.error = event.result, None
    else:
        state.result, state.error = None, event.error
    return state


def _progress(row: TaskState) -> tuple[int, int, int]:
    return (row.attempts, 1 if row.status in TERMINAL else 0, RANK.get(row.status, 0))


def merge_rows(current: Optional[TaskState], incoming: TaskState) -> TaskState:
    """The more advanced of two versions of one row: higher attempt, then final, then later status.

    Used when a worker rebuilds its table from the changelog: a worker that was frozen
    can still flush writes it buffered before the freeze, landing *after* newer rows in
    the changelog. Recovery that merges instead of overwriting never lets such a stale
    row win, whatever order the versions arrive in. Ties go to ``incoming`` (the later
    write, as plain changelog replay would have it).
    """
    if current is None:
        return incoming
    return incoming if _progress(incoming) >= _progress(current) else current


@dataclass
class WorkerStats:
    """Counters one worker keeps about its own work; sent with each heartbeat."""

    tasks_done: int = 0
    tasks_failed: int = 0
    in_progress: int = 0
    invalid_messages: dict[str, int] = field(default_factory=dict)

    def count_invalid(self, reason: str) -> None:
        self.invalid_messages[reason] = self.invalid_messages.get(reason, 0) + 1


class RecentlyFinished:
    """The final status of the last ``size`` tasks this worker finished.

    The status table learns that a task finished only after its event has gone
    through Kafka and the status agent; until then a redelivered or duplicate message
    for it would look unfinished. This bounded memory closes that window on the
    worker that ran it.
    """

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._items: OrderedDict[str, str] = OrderedDict()

    def add(self, task_id: str, status: str) -> None:
        self._items[task_id] = status
        self._items.move_to_end(task_id)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def get(self, task_id: str) -> Optional[str]:
        return self._items.get(task_id)

    def __len__(self) -> int:
        return len(self._items)
