"""What an attempt holds while it runs: :func:`open_attempt`, :func:`track_attempt`,
:func:`close_attempt`.

Shared by both ways an attempt runs (:func:`agents.tasks.run_attempt`, one message at a
time, and :mod:`agents.batch_run`, plain ``def`` tasks of a batch together), so that
the two cannot drift apart: the attempt's options and time limit, its start time, its
progress reporter and context, its place in ``app.running`` (where cancels, leases and
status reads find it) and in the count of attempts in progress.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass
from typing import Any, Optional

from yadtq_app.agents.reporting import send_progress
from yadtq_app.application import app, settings
from yadtq_app.context import ProgressReporter, TaskContext
from yadtq_app.records import TaskRequest, TaskState
from yadtq_app.registry import TaskDef
from yadtq_app.running import Attempt

__all__ = ["Opened", "open_attempt", "track_attempt", "close_attempt"]

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Opened:
    """An attempt that has started: what :func:`open_attempt` set up for it."""

    request: TaskRequest
    attempt: int
    #: The row's options under the message's own.
    options: dict[str, Any]
    #: Its time limit (s).
    timeout: float
    #: When it started (``time.time()``).
    started: float
    reporter: ProgressReporter
    context: TaskContext


def open_attempt(request: TaskRequest, taskdef: TaskDef, attempt: int, state: Optional[TaskState],
                 loop: asyncio.AbstractEventLoop) -> Opened:
    """Start attempt ``attempt`` of ``request`` now: its options, time limit, progress
    reporter and context (nothing is registered yet: :func:`track_attempt`)."""
    options = {**(state.options if state is not None else {}), **request.options}
    timeout = float(options.get("timeout") or taskdef.timeout or settings.default_timeout)
    started = time.time()
    reporter = ProgressReporter(functools.partial(send_progress, request, attempt), loop)
    context = TaskContext(id=request.id, name=request.task, attempt=attempt, worker=settings.worker_id,
                          started_at=started, reporter=reporter)
    return Opened(request, attempt, options, timeout, started, reporter, context)


def track_attempt(opened: Opened, job: "asyncio.Future[Any]", partition: int) -> None:
    """Register ``job``, the running attempt, in ``app.running`` (with no ``await``
    since its status row was read, a cancel folded from then on finds it); it counts as
    in progress until :func:`close_attempt`."""
    request = opened.request
    app.running.add(request.id, job, Attempt(request, opened.attempt, opened.started, partition))
    app.stats.in_progress += 1
    logger.debug("worker %s: task %s (%s) attempt %d starts", settings.worker_id, request.id, request.task,
                 opened.attempt)


def close_attempt(opened: Opened, job: "asyncio.Future[Any]") -> None:
    """The attempt's code is over (``job`` done, cancelled or abandoned): close its
    reporter, drop ``job`` from ``app.running`` and stop counting it in progress. Its
    lease lasts until ``app.running.end``, once its outcome is recorded."""
    opened.reporter.close()
    app.running.remove(opened.request.id, job)
    app.stats.in_progress -= 1
