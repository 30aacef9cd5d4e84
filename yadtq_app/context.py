"""What a running task can know about itself: :func:`current_task`.

::

    from yadtq_app import task, current_task

    @task
    def work(x):
        ctx = current_task()
        log.info("task %s attempt %d on %s", ctx.id, ctx.attempt, ctx.worker)

Set by the worker around each execution (in a context variable, so it follows the
task into the thread that runs a sync function).
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Optional

from .errors import YadtqError

__all__ = ["TaskContext", "current_task"]


@dataclass(frozen=True)
class TaskContext:
    """The running task: its id, name, attempt number (1 = first run) and worker."""

    id: str
    name: str
    attempt: int
    worker: str


_current: contextvars.ContextVar[Optional[TaskContext]] = contextvars.ContextVar("yadtq_task", default=None)


def current_task() -> TaskContext:
    """The task being run by the calling code; :class:`YadtqError` outside a task."""
    ctx = _current.get()
    if ctx is None:
        raise YadtqError("current_task() called outside a running task")
    return ctx
