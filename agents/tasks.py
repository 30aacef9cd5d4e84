"""``execute_tasks``: consume the task topic and run registered tasks.

The agent is thin: decode with :func:`yadtq_app.wire.parse_task_message`, decide
with the status row (:func:`yadtq_app.state.decide`: run, skip a stale duplicate,
defer to its eta, wait on another worker's lease, or end a cancelled attempt), run the
attempt with :func:`yadtq_app.execution.run_task`, and report each step
(:mod:`agents.reporting`); how a failed attempt ends is
:func:`yadtq_app.state.end_of_attempt`. A retry is reported ``retrying`` with its next
start, and the scheduler (:mod:`agents.schedule`) sends its message when it is due.

Its concurrency is ``YADTQ_CONCURRENCY``: that many actors share the topic's stream.
Each attempt runs as its own asyncio task, tracked in ``app.running``
(:class:`yadtq_app.running.RunningTasks`) from before the first ``await`` after the
status row was read, so a cancel either is in that row or reaches the attempt. Whether
the worker may act on a message: :mod:`agents.ownership`; leases on running attempts
across a rebalance: :mod:`agents.leases`. The whole path, for a newcomer:
``docs/tasks.md``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any, Optional

import faust
from faust.types import EventT, StreamT

from yadtq_app.agents.leases import LEASE, LEASE_POLL
from yadtq_app.agents.ordering import enqueue, send_done
from yadtq_app.agents.ownership import fetched_before_rebalance, may_act, still_ours
from yadtq_app.agents.reporting import dead_letter_exhausted, record_start, reject, report, send_progress
from yadtq_app.application import app, settings
from yadtq_app.catch_up import caught_up_now, wait_caught_up
from yadtq_app.context import ProgressReporter, TaskContext
from yadtq_app.encoding import partition_of
from yadtq_app.errors import InvalidTask, RecordWriteError, UnknownTask
from yadtq_app.execution import Outcome, run_task
from yadtq_app.records import (
    CANCELLED,
    FAILED,
    PROCESSING,
    RETRYING,
    SCHEDULED,
    SUCCESS,
    TERMINAL,
    TaskRequest,
    TaskState,
)
from yadtq_app.registry import TaskDef
from yadtq_app.running import Attempt
from yadtq_app.state import CANCEL_NOW, DEFER, RUN, SKIP, WAIT, Decision, cancelled_error, decide, end_of_attempt
from yadtq_app.tables.task_status import get_status
from yadtq_app.topics import task_topic
from yadtq_app.wire import parse_task_message

logger = logging.getLogger(__name__)

#: How long a worker waits to read every event written before a lease that ran out in
#: the row counts as ended (s); past it, the task runs (at least once).
CONFIRM_LEASE_END = 10 * LEASE
#: Task partitions whose status rows are known complete since the last rebalance.
_caught_up: set[int] = set()


async def _on_assigned(*args: Any, **kwargs: Any) -> None:
    _caught_up.clear()  # any rebalance may have moved partitions here whose last events are unfolded


app.on_partitions_assigned.connect(_on_assigned)


@app.agent(task_topic, name="yadtq.execute_tasks", concurrency=settings.concurrency)
async def execute_tasks(stream: StreamT[Any]) -> None:
    """Run each task message; never raises (Faust would ack a message whose handler
    raised, losing the task silently)."""
    async for event in stream.events():
        try:
            await handle_task_message(event)
        except RecordWriteError as exc:
            # Not acknowledged: the message is read again by the partition's next owner.
            app.fatal(f"task message {event.message.topic}-{event.message.partition}@{event.message.offset}: {exc}")
        except Exception:
            msg = event.message
            logger.exception("worker %s: error handling message %s-%s@%s", settings.worker_id,
                             msg.topic, msg.partition, msg.offset)


async def handle_task_message(event: EventT[Any]) -> None:
    """Decode one task message, route it to its own partition, the sequencer, or
    :func:`run_once` once its partition's status rows are caught up."""
    msg = event.message
    app.consumer.delivered(msg.tp, msg.offset)  # type: ignore[attr-defined]  # delivered() is yadtq_app.kafka.consumer.Consumer's
    default_id = f"{msg.topic}-{msg.partition}-{msg.offset}"
    try:
        request = parse_task_message(event.value, max_bytes=settings.max_message_bytes,
                                     max_depth=settings.max_nesting, default_id=default_id)
    except InvalidTask as exc:
        await reject(exc, msg.topic, msg.partition, msg.offset, raw=event.value, key=event.key)
        return
    if event.key != request.key or msg.partition != partition_of(request.key, settings.partitions):
        # Route by the id, not by where the record arrived (another key, none, a
        # producer with another partitioner, or an explicit partition): re-send it
        # keyed by its id, so it runs in the partition that holds its status row.
        logger.info("task %s arrived with key %r in partition %d; re-sending it keyed by its id", request.id,
                    event.key, msg.partition)
        await (await task_topic.send(key=request.key, value=request.encode()))
        return
    try:
        taskdef = app.registry.get(request.task)
    except UnknownTask as exc:
        exc.task_id = request.id
        await reject(exc, msg.topic, msg.partition, msg.offset, raw=event.value, key=event.key, task=request.task)
        return
    app.metrics.task_received(request.task)
    if request.ordering_key is not None and not request.sequenced:
        await enqueue(request)  # its turn comes from the sequencer (yadtq_app.ordering)
        return
    if not await may_act(msg.partition):
        logger.info("worker %s: task %s: partition %d moved to another worker; leaving it there",
                    settings.worker_id, request.id, msg.partition)
        return
    if msg.partition in _caught_up or await _catch_up(request, msg.partition):
        await run_once(request, taskdef)


async def _catch_up(request: TaskRequest, partition: int) -> bool:
    """Wait until ``partition``'s status rows hold every event already written; whether
    to go on with ``request`` (also when that cannot be known)."""
    if await wait_caught_up(partition):
        _caught_up.add(partition)
        return True
    if not await may_act(partition):
        return False  # evicted: our commits fail, the new owner runs it
    if app.rebalancing:
        # Whoever owns the partition next reads this message again from the committed
        # offset (acks from before the seek do not count: yadtq_app.kafka.commits), with the
        # partition's status caught up by then.
        logger.info("task %s: a rebalance began before partition %d's status caught up; leaving it to be "
                    "read again", request.id, partition)
        return False
    # Not knowing is no reason to drop a task (Faust would commit past it): run it, at
    # the risk of a second run if it had finished elsewhere.
    logger.warning("worker %s: task %s: status of partition %d not known to be complete; "
                   "running it anyway (at least once)", settings.worker_id, request.id, partition)
    return True


async def run_once(request: TaskRequest, taskdef: TaskDef) -> None:
    """Act on ``request`` once no other message with its id is handled here (one
    execution per id)."""
    if app.running.busy(request.id):
        logger.info("task %s is already running here; waiting for it instead of running it twice", request.id)
    async with app.running.handling(request.id):
        await execute(request, taskdef)


async def execute(request: TaskRequest, taskdef: TaskDef) -> None:
    """Decide from the status row (:func:`yadtq_app.state.decide`), then act."""
    if fetched_before_rebalance():
        # Read again from the committed offset by whichever worker owns its partition
        # now; its ack here is not counted (yadtq_app.kafka.commits.stale_ack).
        logger.info("task %s: fetched before the last rebalance; leaving it to be read again", request.id)
        return
    decided = await _decide(request)
    if decided is None:
        return  # read again by whoever owns the partition next
    decision, state, finished = decided
    if decision.action == SKIP:
        logger.info("task %s: not running it: %s", request.id, decision.why)
        if request.ordering_key is not None and (finished is not None
                                                 or (state is not None and state.status in TERMINAL)):
            await send_done(request)  # it was final: let the next of its key run (again, if need be)
        return
    if decision.action == DEFER:
        logger.debug("task %s: scheduled for %s", request.id, request.eta)
        await report(request, SCHEDULED, attempt=0, next_run_at=request.eta, wait=True)
        return
    if decision.action == CANCEL_NOW:
        await report(request, CANCELLED, attempt=decision.attempt, state=state, wait=True,
                     error=cancelled_error("cancelled while running"))
        await send_done(request)
        return
    if await run_attempt(request, taskdef, decision.attempt, state):
        await send_done(request)  # final: the next task of its ordering key may run


async def _decide(request: TaskRequest) -> Optional[tuple[Decision, Optional[TaskState], Optional[tuple[str, int]]]]:
    """The decision on ``request`` once no other worker's lease holds it back, with the
    row and this worker's memory it was made from; ``None`` if the partition moved
    away meanwhile."""
    waited = False
    confirmed: Optional[float] = None  # a lease seen run out with every event folded
    while True:
        state = get_status(request.id)
        finished = app.finished.get(request.id)
        decision = decide(state, request, finished=finished, now=time.time(), worker=settings.worker_id)
        if decision.action == RUN and state is not None and _leased_elsewhere(state) \
                and state.lease_until != confirmed:
            # Its worker renews the lease every heartbeat while the attempt runs: a
            # renewal may be written and not folded yet. Decide again once it would be.
            read = await _read_events_so_far(request)
            if read is None:
                return None
            if not read:
                logger.warning("task %s: could not read the events after its lease on %s ran out; running it "
                               "(at least once)", request.id, state.worker)
            confirmed = state.lease_until
            continue
        if decision.action != WAIT:
            return decision, state, finished
        if not waited:
            logger.info("task %s: not running it yet: %s", request.id, decision.why)
            waited = True
        await asyncio.sleep(LEASE_POLL)
        if not await still_ours():
            return None


async def _read_events_so_far(request: TaskRequest) -> Optional[bool]:
    """Wait until every event now in ``request``'s events partition is folded: True
    when it is, False after :data:`CONFIRM_LEASE_END`, ``None`` if the message is no
    longer this worker's to act on (a rebalance, a stop)."""
    deadline = time.monotonic() + CONFIRM_LEASE_END
    partition = partition_of(request.key, settings.partitions)
    while time.monotonic() < deadline:
        if await caught_up_now(partition, timeout=max(0.0, deadline - time.monotonic())):
            return True
        if not await still_ours():  # waits while the worker's gate is closed (a freeze)
            return None
        await asyncio.sleep(LEASE_POLL)
    return False


def _leased_elsewhere(state: TaskState) -> bool:
    """Whether ``state`` is an attempt another worker leased (:mod:`agents.leases`)."""
    return state.status == PROCESSING and state.lease_until is not None and state.worker != settings.worker_id


async def run_attempt(request: TaskRequest, taskdef: TaskDef, attempt: int, state: Optional[TaskState]) -> bool:
    """Run one attempt and report its outcome; True if the task is final (not retrying)."""
    options = {**(state.options if state is not None else {}), **request.options}
    timeout = options.get("timeout") or taskdef.timeout or settings.default_timeout
    stats = app.stats
    stats.in_progress += 1
    started = time.time()
    reporter = ProgressReporter(functools.partial(send_progress, request, attempt), asyncio.get_running_loop())
    context = TaskContext(id=request.id, name=request.task, attempt=attempt, worker=settings.worker_id,
                          started_at=started, reporter=reporter)
    gate = asyncio.Event()

    async def body() -> Outcome:
        await gate.wait()  # start after the processing event, so progress events come after it
        if not await still_ours():
            raise _NotStarted
        return await run_task(taskdef, list(request.task_args), dict(request.task_kwargs), timeout=timeout,
                              threads=app.threads, context=context, processes=app.processes,
                              max_result_bytes=settings.max_result_bytes)

    # No await since the status row was read: a cancel folded from now on finds the job.
    job = asyncio.ensure_future(body())
    current = faust.current_event()
    app.running.add(request.id, job, Attempt(request, attempt, started,
                                             current.message.partition if current is not None else -1))
    try:
        await record_start(request, attempt, state, started)
        gate.set()
        logger.debug("worker %s: task %s (%s) attempt %d starts", settings.worker_id, request.id,
                     request.task, attempt)
        outcome: Optional[Outcome] = await job
    except _NotStarted:
        logger.info("task %s: partition moved before the attempt started; leaving it to its owner", request.id)
        app.running.drop_start(request.id)
        app.running.end(request.id)
        return False
    except asyncio.CancelledError:
        if not (job.cancelled() and app.running.was_cancelled(request.id)):
            job.cancel()
            app.running.drop_start(request.id)  # never started, as far as the table knows
            app.running.end(request.id)
            raise  # the worker is stopping: the message is redelivered
        outcome = None
    except BaseException:
        app.running.end(request.id)
        raise
    finally:
        reporter.close()
        app.running.remove(request.id, job)
        stats.in_progress -= 1
    try:
        return await finish_attempt(request, taskdef, attempt, state, options, outcome, started)
    finally:
        app.running.end(request.id)  # leased until its outcome is recorded


class _NotStarted(Exception):
    """The attempt's code had not begun when its worker found the task message no
    longer its own to act on (:func:`agents.ownership.still_ours`): it is read again by
    the partition's owner."""


async def finish_attempt(request: TaskRequest, taskdef: TaskDef, attempt: int, state: Optional[TaskState],
                         options: dict[str, Any], outcome: Optional[Outcome], started: float) -> bool:
    """Report an attempt's end (``outcome`` ``None``: cancelled); True if the task is final."""
    app.running.forget(request.id)
    retries_used = state.retries if state is not None else 0
    end = end_of_attempt(outcome, taskdef, options, retries_used=retries_used, settings=settings)
    app.metrics.attempt_ended(request.task, end.status, time.time() - started)
    if outcome is None:
        app.finished.add(request.id, CANCELLED, attempt)
        logger.info("worker %s: task %s cancelled in attempt %d", settings.worker_id, request.id, attempt)
        await report(request, CANCELLED, attempt=attempt, state=state, started_at=started, wait=True,
                     error=cancelled_error("cancelled while running"))
        return True
    if outcome.ok:
        app.finished.add(request.id, SUCCESS, attempt)
        app.stats.tasks_done += 1
        await report(request, SUCCESS, attempt=attempt, state=state, result=outcome.result, started_at=started,
                     wait=True)
        return True
    err = outcome.error or {}
    if end.status == RETRYING:
        logger.info("worker %s: task %s (%s) attempt %d failed (%s: %s); retry %d of %d in %.2f s",
                    settings.worker_id, request.id, request.task, attempt, err.get("type"), err.get("message"),
                    retries_used + 1, end.max_retries, end.delay)
        await report(request, RETRYING, attempt=attempt, state=state, error=outcome.error, started_at=started,
                     next_run_at=time.time() + end.delay, wait=True)
        return False
    app.finished.add(request.id, FAILED, attempt)
    app.stats.tasks_failed += 1
    logger.info("worker %s: task %s (%s) failed: %s: %s", settings.worker_id, request.id, request.task,
                err.get("type"), err.get("message"))
    failed = report(request, FAILED, attempt=attempt, state=state, error=outcome.error, started_at=started,
                    wait=True)
    # Every task that ends failed is findable in the dead letters, retried or not (as Celery users expect).
    await dead_letter_exhausted(request, attempt, state, outcome, started,
                                end.max_retries if outcome.retryable else 0)
    await failed
    return True
