"""``execute_tasks``: consume the task topic and run registered tasks.

The agent is thin: decode with :func:`yadtq_app.records.parse_task_message`, decide
with the status row, run with :func:`yadtq_app.execution.run_task`, and report each
step as a :class:`~yadtq_app.records.TaskEvent`. Nothing escapes the loop: Faust acks
a message whose handler raised, which would lose the task silently.

Its concurrency is ``YADTQ_CONCURRENCY``: that many actors share the topic's stream,
so a slow task does not hold up the rest of its partition. Faust commits an offset
only once every message before it is acked, so a crash redelivers unfinished work.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from typing import Any, AsyncIterable, Optional

from faust.types import EventT

from agents.status import wait_caught_up
from tables.task_status import get_status
from yadtq_app.application import app, settings
from yadtq_app.context import TaskContext
from yadtq_app.errors import InvalidTask, UnknownTask
from yadtq_app.execution import run_task
from yadtq_app.registry import TaskDef
from yadtq_app.records import (
    FAILED,
    PROCESSING,
    SUCCESS,
    TERMINAL,
    DeadLetter,
    TaskEvent,
    TaskRequest,
    parse_task_message,
)
from yadtq_app.state import RecentlyFinished
from yadtq_app.topics import dead_letter_topic, events_topic, task_topic

logger = logging.getLogger(__name__)

#: Tasks running on this worker: id → done. A second message with the same id waits
#: for the first to finish, then is skipped (one execution per id).
_running: dict[str, asyncio.Event] = {}
#: Final statuses of tasks this worker ran, ahead of the status table (see RecentlyFinished).
_finished = RecentlyFinished()
#: Task partitions whose status rows are known complete since the last rebalance.
_caught_up: set[int] = set()


@app.on_partitions_assigned.connect
async def _on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
    # Any rebalance may have moved partitions here whose last events are unfolded.
    _caught_up.clear()
    app.freeze_guard.on_assigned()


@app.timer(interval=0.1, name="yadtq.freeze_guard_tick")
async def _tick_freeze_guard() -> None:
    app.freeze_guard.tick()


@app.agent(task_topic, name="yadtq.execute_tasks", concurrency=settings.concurrency)
async def execute_tasks(stream: AsyncIterable[Any]) -> None:
    """Run each task message; never raises."""
    async for event in stream.events():  # type: ignore[attr-defined]
        try:
            await handle_task_message(event)
        except Exception:  # noqa: BLE001 - see module docs
            msg = event.message
            logger.exception("worker %s: error handling message %s-%s@%s", settings.worker_id,
                             msg.topic, msg.partition, msg.offset)


async def handle_task_message(event: EventT) -> None:
    msg = event.message
    default_id = f"{msg.topic}-{msg.partition}-{msg.offset}"
    try:
        request = parse_task_message(event.value, max_bytes=settings.max_message_bytes, default_id=default_id)
    except InvalidTask as exc:
        await reject(exc, msg.topic, msg.partition, msg.offset, raw=event.value, key=event.key)
        return
    if event.key != request.key:
        # Route by the id, not by where the record arrived: re-send it keyed by its id,
        # so it runs in the partition that holds its status row.
        logger.info("task %s arrived with key %r; re-keying by its id", request.id, event.key)
        await (await task_topic.send(key=request.key, value=request.encode()))
        return
    try:
        taskdef = app.registry.get(request.task)
    except UnknownTask as exc:
        exc.task_id = request.id
        await reject(exc, msg.topic, msg.partition, msg.offset, raw=event.value, key=event.key, task=request.task)
        return
    if not await app.may_act_on(msg.topic, msg.partition):
        logger.info("worker %s: task %s: partition %d moved to another worker; leaving it there",
                    settings.worker_id, request.id, msg.partition)
        return
    if msg.partition not in _caught_up:
        if await wait_caught_up(msg.partition):
            _caught_up.add(msg.partition)
        elif not await app.may_act_on(msg.topic, msg.partition):
            return  # evicted: our commits fail, the new owner runs it
        else:
            # Not knowing is no reason to drop a task (Faust would commit past it):
            # run it, at the risk of a second run if it had finished elsewhere.
            logger.warning("worker %s: task %s: status of partition %d not known to be complete; "
                           "running it anyway (at least once)", settings.worker_id, request.id, msg.partition)
    await run_once(request, taskdef)


async def run_once(request: TaskRequest, taskdef: TaskDef) -> None:
    """Execute ``request`` unless it already ran or is running here (one execution per id)."""
    running = _running.get(request.id)
    if running is not None:
        logger.info("task %s is already running here; waiting for it instead of running it twice", request.id)
        await running.wait()
    done = _running[request.id] = asyncio.Event()
    try:
        await execute(request, taskdef)
    finally:
        done.set()
        if _running.get(request.id) is done:
            del _running[request.id]


async def execute(request: TaskRequest, taskdef: TaskDef) -> None:
    """Run one valid request unless its status says it already finished."""
    state = get_status(request.id)
    final = _finished.get(request.id) or (state.status if state is not None and state.status in TERMINAL else None)
    if final is not None:
        logger.info("task %s already %s; not running it again", request.id, final)
        return
    attempt = (state.attempts if state is not None else 0) + 1
    stats = app.stats
    stats.in_progress += 1
    try:
        await report(request, PROCESSING, attempt=attempt)
        logger.debug("worker %s: task %s (%s) attempt %d starts", settings.worker_id, request.id,
                     request.task, attempt)
        timeout = taskdef.timeout or settings.default_timeout
        context = TaskContext(id=request.id, name=request.task, attempt=attempt, worker=settings.worker_id)
        outcome = await run_task(taskdef, list(request.task_args), dict(request.task_kwargs), timeout=timeout,
                                 executor=app.executor, context=context)
    finally:
        stats.in_progress -= 1
    _finished.add(request.id, SUCCESS if outcome.ok else FAILED)
    if outcome.ok:
        stats.tasks_done += 1
        await report(request, SUCCESS, attempt=attempt, result=outcome.result, wait=True)
    else:
        stats.tasks_failed += 1
        err = outcome.error or {}
        logger.info("worker %s: task %s (%s) failed: %s: %s", settings.worker_id, request.id, request.task,
                    err.get("type"), err.get("message"))
        await report(request, FAILED, attempt=attempt, error=outcome.error, wait=True)


async def reject(exc: InvalidTask, topic: str, partition: int, offset: int, *, raw: Optional[bytes],
                 key: Optional[bytes], task: Optional[str] = None) -> None:
    """Account for a message that will never run: count it, dead-letter it, fail its status."""
    app.stats.count_invalid(exc.reason)
    logger.warning("worker %s: invalid task message %s-%s@%s (%s): %s", settings.worker_id, topic, partition,
                   offset, exc.reason, exc)
    letter = DeadLetter(
        id=exc.task_id or f"{topic}-{partition}-{offset}", reason=exc.reason, error=str(exc), topic=topic,
        partition=partition, offset=offset, at=time.time(), task_id=exc.task_id, task=task,
        raw=base64.b64encode(raw).decode() if raw is not None else None,
        key=key.decode("utf-8", "replace") if key is not None else None, worker=settings.worker_id)
    letter_sent = await dead_letter_topic.send(key=letter.id, value=letter)
    if exc.task_id:
        request = TaskRequest(id=exc.task_id, task=task or "?")
        error_type = "UnknownTask" if isinstance(exc, UnknownTask) else "InvalidTask"
        await report(request, FAILED, attempt=0,
                     error={"type": error_type, "message": str(exc), "reason": exc.reason, "traceback": None},
                     wait=True)
    await letter_sent


async def report(request: TaskRequest, kind: str, *, attempt: int, result: Any = None,
                 error: Optional[dict[str, Any]] = None, wait: bool = False) -> None:
    """Send a status event for ``request``; with ``wait``, until the broker has it."""
    event = TaskEvent(id=request.id, kind=kind, task=request.task, task_args=list(request.task_args),
                      task_kwargs=dict(request.task_kwargs), attempt=attempt, worker=settings.worker_id,
                      at=time.time(), submitted_at=request.submitted_at, result=result, error=error)
    fut = await events_topic.send(key=request.key, value=event)
    if wait:
        await fut
