"""What a running task can know about itself: :func:`current_task`.

::

    from yadtq_app import task, current_task

    @task
    def work(x):
        ctx = current_task()
        log.info("task %s attempt %d on %s", ctx.id, ctx.attempt, ctx.worker)
        ctx.progress(0.4, "parsing")          # shown by GET /tasks/{id}

Set by the worker around each execution (in a context variable, so it follows the
task into the thread that runs a sync function). Progress reports are coalesced: at
most one status event per :data:`PROGRESS_INTERVAL` seconds carries the latest value,
so a tight loop calling ``progress`` costs nothing on the wire.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional

from .errors import YadtqError

__all__ = ["TaskContext", "current_task", "ProgressReporter", "PROGRESS_INTERVAL"]

#: Seconds between two progress events of one task.
PROGRESS_INTERVAL = 0.2


@dataclass(frozen=True)
class TaskContext:
    """The running task: its id, name, attempt number (1 = first run), worker, and when
    the worker began the attempt (Unix seconds, as the status row's ``started_at``)."""

    id: str
    name: str
    attempt: int
    worker: str
    started_at: float = 0.0
    reporter: Optional["ProgressReporter"] = field(default=None, repr=False, compare=False)

    def progress(self, fraction: float, message: Optional[str] = None) -> None:
        """Report how far the task got: ``fraction`` from 0 to 1, and an optional short message.

        Safe from async code and from the thread of a sync task. Not available in a
        ``process=True`` task (it runs in another process).
        """
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not math.isfinite(fraction) \
                or not 0 <= fraction <= 1:
            raise ValueError("progress fraction must be a number from 0 to 1")
        if message is not None and not isinstance(message, str):
            raise ValueError("progress message must be a string")
        if self.reporter is None:
            raise YadtqError("progress is not available here (process=True tasks cannot report progress)")
        self.reporter.report(float(fraction), message[:200] if message else None)


class ProgressReporter:
    """Coalesces a task's progress reports into at most one send per ``interval``.

    ``send`` is a coroutine function taking ``{"fraction", "message", "at"}``; it runs
    on ``loop``. :meth:`report` may be called from any thread.
    """

    def __init__(self, send: Callable[[dict[str, Any]], Awaitable[None]], loop: asyncio.AbstractEventLoop, *,
                 interval: float = PROGRESS_INTERVAL) -> None:
        self._send = send
        self._loop = loop
        self._interval = interval
        self._lock = threading.Lock()
        self._latest: Optional[dict[str, Any]] = None
        self._scheduled = False
        self._last_sent = 0.0
        self._closed = False
        self.sent = 0

    def report(self, fraction: float, message: Optional[str]) -> None:
        with self._lock:
            if self._closed:
                return
            self._latest = {"fraction": fraction, "message": message, "at": time.time()}
            if self._scheduled:
                return
            self._scheduled = True
        self._loop.call_soon_threadsafe(self._start_flush)

    def _start_flush(self) -> None:
        if not self._closed:
            self._loop.create_task(self._flush())

    async def _flush(self) -> None:
        wait = self._last_sent + self._interval - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        with self._lock:
            value, self._latest, self._scheduled = self._latest, None, False
            if self._closed or value is None:
                return
        self._last_sent = time.monotonic()
        self.sent += 1
        await self._send(value)

    def close(self) -> None:
        """Stop sending: the attempt ended (its outcome supersedes any progress)."""
        with self._lock:
            self._closed = True


_current: contextvars.ContextVar[Optional[TaskContext]] = contextvars.ContextVar("yadtq_task", default=None)


def current_task() -> TaskContext:
    """The task being run by the calling code; :class:`YadtqError` outside a task."""
    ctx = _current.get()
    if ctx is None:
        raise YadtqError("current_task() called outside a running task")
    return ctx
