"""The attempts running on this worker (:class:`RunningTasks`)."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Optional, Union

from .records import TaskEvent

__all__ = ["RunningTasks"]


class RunningTasks:
    """The attempts running on this worker, so a cancel request can reach them, and the
    ``processing`` events of those whose start is not in the status table yet."""

    def __init__(self) -> None:
        self._jobs: dict[str, asyncio.Future[Any]] = {}
        self._cancelled: set[str] = set()
        self._starts: dict[str, Union[TaskEvent, Callable[[], TaskEvent]]] = {}

    def defer_start(self, task_id: str, make: Callable[[], TaskEvent]) -> None:
        """Hold the ``processing`` event of an attempt that just started (see
        ``agents.tasks.record_start``); ``make`` builds it, only if it is ever needed
        (most attempts end first, and their outcome records the start)."""
        self._starts[task_id] = make

    def take_start(self, task_id: str) -> Optional[TaskEvent]:
        """The held ``processing`` event of ``task_id``, no longer held (``None`` if none)."""
        start = self._starts.pop(task_id, None)
        return start() if callable(start) else start

    def drop_start(self, task_id: str) -> None:
        """Hold the start of ``task_id`` no longer (its outcome records it, or it never began)."""
        self._starts.pop(task_id, None)

    def unrecorded_start(self, task_id: str) -> Optional[TaskEvent]:
        """The held ``processing`` event of ``task_id``, if any (it stays held)."""
        start = self._starts.get(task_id)
        if callable(start):
            start = self._starts[task_id] = start()
        return start

    def add(self, task_id: str, job: "asyncio.Future[Any]") -> None:
        self._jobs[task_id] = job
        self._cancelled.discard(task_id)

    def remove(self, task_id: str, job: "asyncio.Future[Any]") -> None:
        if self._jobs.get(task_id) is job:
            del self._jobs[task_id]

    def cancel(self, task_id: str) -> bool:
        """Cancel the running attempt of ``task_id``; False if none runs here."""
        job = self._jobs.get(task_id)
        if job is None or job.done():
            return False
        self._cancelled.add(task_id)
        job.cancel()
        return True

    def was_cancelled(self, task_id: str) -> bool:
        """Whether the last attempt of ``task_id`` was cancelled by :meth:`cancel`."""
        return task_id in self._cancelled

    def forget(self, task_id: str) -> None:
        self._cancelled.discard(task_id)

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._jobs
