"""What a worker keeps in memory beside its tables: its counters, the tasks it finished
lately, the ids the dashboard lists, and status reads waiting for a task to finish."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional

__all__ = ["WorkerStats", "RecentlyFinished", "RecentTasks", "FinishWaiters"]


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
    """The final status (and attempt) of the last ``size`` tasks this worker finished.

    The worker running a task folds its outcome into its own table at once; when it
    cannot (the partition is moving, or the local write failed), the outcome goes through
    the events topic, and until the status agent folds it a redelivered or duplicate
    message for the task would look unfinished. This bounded memory closes that window
    on the worker that ran it. The window lasts seconds, so ``size`` covers many of
    them at full speed; each entry costs about 220 bytes.
    """

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._items: OrderedDict[str, tuple[str, int]] = OrderedDict()

    def add(self, task_id: str, status: str, attempt: int = 1) -> None:
        self._items[task_id] = (status, attempt)
        self._items.move_to_end(task_id)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def get(self, task_id: str) -> Optional[tuple[str, int]]:
        return self._items.get(task_id)

    def discard(self, task_id: str) -> None:
        self._items.pop(task_id, None)

    def __len__(self) -> int:
        return len(self._items)


class RecentTasks:
    """The ids of the last ``size`` tasks whose status row this worker wrote, newest
    last (what the dashboard lists)."""

    def __init__(self, size: int = 500) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def touch(self, task_id: str) -> None:
        self._ids[task_id] = None
        self._ids.move_to_end(task_id)
        while len(self._ids) > self.size:
            self._ids.popitem(last=False)

    def newest(self) -> list[str]:
        """The ids, newest first."""
        return list(reversed(self._ids))


class FinishWaiters:
    """Requests waiting for a task to finish (``GET /tasks/{id}?wait=…``), on the worker
    that owns the task's row: :func:`agents.status.fold` wakes them when it writes a
    final row, a rebalance wakes them all (the row may be moving to another worker)."""

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Future[bool]]] = {}

    async def wait(self, task_id: str, timeout: float) -> bool:
        """Wait until woken for ``task_id`` or ``timeout`` s pass; True if woken."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        waiters = self._waiting.setdefault(task_id, set())
        waiters.add(future)
        # Not asyncio.wait_for: it wakes its caller a turn of the loop after the future,
        # and the answer to a long poll is the end of a round trip someone waits for.
        timer = loop.call_later(timeout, _settle, future, False)
        try:
            return await future
        finally:
            timer.cancel()
            waiters.discard(future)
            if not waiters and self._waiting.get(task_id) is waiters:
                del self._waiting[task_id]

    def wake(self, task_id: str) -> None:
        for future in self._waiting.get(task_id, ()):
            _settle(future, True)

    def wake_all(self) -> None:
        for task_id in list(self._waiting):
            self.wake(task_id)

    def __len__(self) -> int:
        return sum(len(w) for w in self._waiting.values())


def _settle(future: "asyncio.Future[bool]", woken: bool) -> None:
    if not future.done():
        future.set_result(woken)
