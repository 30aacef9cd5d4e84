"""How the task agent records what happens to a task: status events, held starts, and
dead letters.

:func:`report` folds an event straight into the status table when the current task
message is the task's own and still this worker's (:func:`agents.ownership.owns_now`),
and sends it through the events topic otherwise. :func:`record_start` holds an
attempt's ``processing`` event back for :data:`START_RECORD_DELAY`. Why, and what
makes this safe: ``docs/tasks.md`` (reporting).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from typing import Any, Optional

from yadtq_app.agents.ownership import holds_current, owns_now
from yadtq_app.agents.status import OUTCOMES, fold
from yadtq_app.application import app, settings
from yadtq_app.encoding import is_utf8, raw_sample
from yadtq_app.errors import InvalidTask, RecordWriteError, UnknownTask
from yadtq_app.execution import Outcome, clip_head
from yadtq_app.fast_records import build
from yadtq_app.records import (
    CANCELLED,
    FAILED,
    PROCESSING,
    PROGRESS,
    RETRYING,
    SCHEDULED,
    SUCCESS,
    DeadLetter,
    TaskEvent,
    TaskRequest,
    TaskState,
)
from yadtq_app.state import attempt_record
from yadtq_app.topics import dead_letter_topic, events_topic, task_topic

__all__ = ["OWN_KINDS", "START_RECORD_DELAY", "event_for", "report", "record_start", "send_progress", "reject",
           "dead_letter_exhausted", "write_held_start"]

logger = logging.getLogger(__name__)

#: What the executing worker writes into the status table itself (see :func:`report`).
OWN_KINDS = frozenset({SCHEDULED, PROCESSING, RETRYING, SUCCESS, FAILED, CANCELLED})

#: How long an attempt runs before its ``processing`` row is written (s); see :func:`record_start`.
START_RECORD_DELAY = 0.05


def event_for(request: TaskRequest, kind: str, *, attempt: int, state: Optional[TaskState] = None,
              result: Any = None, error: Optional[dict[str, Any]] = None, at: Optional[float] = None,
              started_at: Optional[float] = None, next_run_at: Optional[float] = None,
              progress: Optional[dict[str, Any]] = None, lease_until: Optional[float] = None) -> TaskEvent:
    """The ``kind`` event this worker reports about ``attempt`` of ``request`` (the
    row's options if it has any, else the request's)."""
    options = state.options if state is not None and state.options else request.options
    return build(TaskEvent, {
        "id": request.id, "kind": kind, "task": request.task, "task_args": list(request.task_args),
        "task_kwargs": dict(request.task_kwargs), "attempt": attempt, "worker": settings.worker_id,
        "at": time.time() if at is None else at, "submitted_at": request.submitted_at, "result": result,
        "error": error, "options": options, "next_run_at": next_run_at, "progress": progress,
        "started_at": started_at, "lease_until": lease_until,
        "dispatch": (request.attempt or 1) if kind == PROCESSING else None})


async def report(request: TaskRequest, kind: str, *, attempt: int, state: Optional[TaskState] = None,
                 result: Any = None, error: Optional[dict[str, Any]] = None, at: Optional[float] = None,
                 started_at: Optional[float] = None, next_run_at: Optional[float] = None,
                 progress: Optional[dict[str, Any]] = None, wait: bool = False) -> None:
    """Record a status event for ``request``: folded here if the worker owns the row
    now and ``kind`` is one of :data:`OWN_KINDS`, else sent through the events topic
    (with ``wait``, until the broker has it).

    Raises :class:`~yadtq_app.errors.RecordWriteError` if the event could not be sent
    (not for ``progress``, which is advice: the outcome supersedes it).
    """
    event = event_for(request, kind, attempt=attempt, state=state, result=result, error=error, at=at,
                      started_at=started_at, next_run_at=next_run_at, progress=progress)
    if kind in OUTCOMES:
        app.running.drop_start(request.id)  # the outcome records the start with it
    if kind in OWN_KINDS and await owns_now(request):
        try:
            fold(event)
            return
        except Exception:
            logger.exception("task %s: could not record %s locally; sending it as an event", request.id, kind)
    try:
        fut = await events_topic.send(key=request.key, value=event)
        if wait:
            await fut
    except Exception as exc:
        if kind == PROGRESS:
            logger.warning("task %s: could not send its progress: %r", request.id, exc)
            return
        raise RecordWriteError(f"task {request.id}: could not record {kind}: {exc!r}") from exc


async def record_start(request: TaskRequest, attempt: int, state: Optional[TaskState], started: float) -> None:
    """Hold the ``processing`` event of an attempt that starts, and write it once the
    attempt has run for :data:`START_RECORD_DELAY` unless something recorded it
    first; nothing if the task's partition is no longer this worker's to act on."""
    if not await owns_now(request):
        return  # the partition moved away, or is moving (a rebalance, a freeze)
    app.running.defer_start(request.id, functools.partial(event_for, request, PROCESSING, attempt=attempt,
                                                          state=state, at=started))
    asyncio.get_running_loop().call_later(START_RECORD_DELAY, write_held_start, request.id, attempt,
                                          context=contextvars.copy_context())


def write_held_start(task_id: str, attempt: int) -> None:
    """Write the held start of ``attempt`` if it is still held (call it in the task
    message's context)."""
    start = app.running.unrecorded_start(task_id)
    if start is None or start.attempt != attempt:
        return
    app.running.drop_start(task_id)
    if not holds_current():
        return  # the partition moved away meanwhile, or may be moving (its lease records the start)
    try:
        fold(start)
    except Exception:
        logger.exception("task %s: could not record its start", task_id)


async def send_progress(request: TaskRequest, attempt: int, progress: dict[str, Any]) -> None:
    """Report the progress of ``attempt`` (what a task's ``ctx.progress`` sends)."""
    await report(request, PROGRESS, attempt=attempt, progress=progress)


async def dead_letter_exhausted(request: TaskRequest, attempt: int, state: Optional[TaskState], outcome: Outcome,
                                started: float, max_retries: int) -> None:
    """A task that ended failed: into the dead-letter topic, with every attempt; the
    reason is ``retries-exhausted`` if it had retries (``max_retries`` > 0), else ``failed``.

    Raises :class:`~yadtq_app.errors.RecordWriteError` if the letter could not be sent.
    """
    err = outcome.error or {}
    history = [*(state.history if state is not None else []),
               attempt_record(attempt, settings.worker_id, FAILED, started, time.time(), outcome.error)]
    letter = DeadLetter(
        id=request.id, reason="retries-exhausted" if max_retries > 0 else "failed", task_id=request.id,
        task=request.task,
        error=f"{err.get('type')}: {err.get('message')}" + (f" (after {max_retries} retries)" if max_retries else ""),
        topic=task_topic.get_topic_name(), partition=-1, offset=-1, at=time.time(),
        key=request.id, worker=settings.worker_id, history=history, **raw_sample(request.encode()))
    try:
        await (await dead_letter_topic.send(key=letter.id, value=letter))
    except Exception as exc:
        raise RecordWriteError(f"task {request.id}: could not dead-letter it: {exc!r}") from exc
    app.metrics.dead_letters.labels(letter.reason).inc()


async def reject(exc: InvalidTask, topic: str, partition: int, offset: int, *, raw: Optional[bytes],
                 key: Optional[bytes], task: Optional[str] = None) -> None:
    """Account for a message that will never run: count it, dead-letter it, fail its status.

    Raises :class:`~yadtq_app.errors.RecordWriteError` if the letter could not be sent.
    """
    app.stats.count_invalid(exc.reason)
    app.metrics.invalid.labels(exc.reason).inc()
    logger.warning("worker %s: invalid task message %s-%s@%s (%s): %s", settings.worker_id, topic, partition,
                   offset, exc.reason, exc)
    task_id = exc.task_id if exc.task_id and is_utf8(exc.task_id) else None
    letter = DeadLetter(
        id=task_id or f"{topic}-{partition}-{offset}", reason=exc.reason, error=clip_head(str(exc), 1000),
        topic=topic, partition=partition, offset=offset, at=time.time(), task_id=task_id,
        task=clip_head(task, 300) if task is not None and is_utf8(task) else None,
        key=clip_head(key.decode("utf-8", "replace"), 1000) if key is not None else None,
        worker=settings.worker_id, **raw_sample(raw))
    try:
        letter_sent = await dead_letter_topic.send(key=letter.id, value=letter)
    except Exception as exc2:
        raise RecordWriteError(f"could not dead-letter {topic}-{partition}@{offset}: {exc2!r}") from exc2
    if task_id:
        request = TaskRequest(id=task_id, task=letter.task or "?")
        error_type = "UnknownTask" if isinstance(exc, UnknownTask) else "InvalidTask"
        await report(request, FAILED, attempt=0,
                     error={"type": error_type, "message": letter.error, "reason": exc.reason, "traceback": None},
                     wait=True)
    try:
        await letter_sent
    except Exception as exc2:
        raise RecordWriteError(f"could not dead-letter {topic}-{partition}@{offset}: {exc2!r}") from exc2
    app.metrics.dead_letters.labels(letter.reason).inc()
