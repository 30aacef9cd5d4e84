"""``execute_tasks``: consume the task topic and run registered tasks.

The agent is thin: decode with :func:`yadtq_app.wire.parse_task_message`, decide
with the status row (:func:`yadtq_app.state.decide`: run, skip a stale duplicate,
defer to its eta, wait on another worker's lease, or end a cancelled attempt), run the
attempt with :func:`yadtq_app.execution.run_task`, and report each step
(:mod:`agents.reporting`); how a failed attempt ends is
:func:`yadtq_app.state.end_of_attempt`. A retry is reported ``retrying`` with its next
start, and the scheduler (:mod:`agents.schedule`) sends its message when it is due.

One actor reads the topic a batch at a time (:mod:`agents.batches`); plain ``def``
tasks of a batch run together (:mod:`agents.batch_run`), every other message takes the one-message path
below in an asyncio task of its own. ``YADTQ_CONCURRENCY`` is the worker's slots:
how many attempts run at once, on either path. On this path each attempt runs as its
own asyncio task, tracked in ``app.running``
(:class:`yadtq_app.running.RunningTasks`) from before the first ``await`` after the
status row was read, so a cancel either is in that row or reaches the attempt. Whether
the worker may act on a message: :mod:`agents.ownership`; leases on running attempts
across a rebalance: :mod:`agents.leases`. The whole path, for a newcomer:
``docs/tasks.md``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Optional, TypeVar

import faust
from faust.types import EventT, StreamT

from yadtq_app.agents.attempts import close_attempt, open_attempt, track_attempt
from yadtq_app.agents.batch_run import Call, batchable, run_batch, set_current, slots
from yadtq_app.agents.batches import IN_FLIGHT_MAX, BatchAcks, InFlight, ready_batches
from yadtq_app.agents.leases import LEASE, LEASE_POLL
from yadtq_app.agents.ordering import enqueue, send_done
from yadtq_app.agents.outcomes import finish_attempt
from yadtq_app.agents.ownership import fetched_before_rebalance, may_act, still_ours
from yadtq_app.agents.reporting import record_start, reject, report
from yadtq_app.application import app, settings
from yadtq_app.catch_up import caught_up_now, wait_caught_up
from yadtq_app.encoding import partition_of
from yadtq_app.errors import InvalidTask, RecordWriteError, UnknownTask
from yadtq_app.execution import Outcome, run_task
from yadtq_app.records import (
    CANCELLED,
    SCHEDULED,
    TERMINAL,
    TaskRequest,
    TaskState,
)
from yadtq_app.registry import TaskDef
from yadtq_app.state import CANCEL_NOW, DEFER, RUN, SKIP, WAIT, Decision, cancelled_error, decide, leased_by_another
from yadtq_app.tables.task_status import get_status
from yadtq_app.topics import task_topic
from yadtq_app.wire import parse_task_message

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

#: How long a worker waits to read every event written before a lease that ran out in
#: the row counts as ended (s); past it, the task runs (at least once).
CONFIRM_LEASE_END = 10 * LEASE
#: Task partitions whose status rows are known complete since the last rebalance.
_caught_up: set[int] = set()


async def _on_assigned(*args: Any, **kwargs: Any) -> None:
    _caught_up.clear()  # any rebalance may have moved partitions here whose last events are unfolded


app.on_partitions_assigned.connect(_on_assigned)


@app.agent(task_topic, name="yadtq.execute_tasks", concurrency=1)
async def execute_tasks(stream: StreamT[Any]) -> None:
    """Read the task messages a batch at a time (:func:`agents.batches.ready_batches`)
    and handle each batch in an asyncio task of its own while reading on, with at most
    :data:`~agents.batches.IN_FLIGHT_MAX` messages read and not handled; how many
    attempts run at once is the worker's slots' business (``YADTQ_CONCURRENCY``)."""
    flight = InFlight(IN_FLIGHT_MAX)
    try:
        async for events in ready_batches(stream):
            app.metrics.batches.observe(len(events))
            flight.start(handle_batch(events, BatchAcks(stream, flight, events)), len(events))
            await flight.room()
    finally:
        flight.cancel()


async def handle_batch(events: list[EventT[Any]], acks: BatchAcks) -> None:
    """Handle ``events`` and ack each (``acks``) once it is handled: their plain ``def``
    tasks together (:func:`agents.batch_run.run_batch`), every other task as an asyncio
    task of its own. Never raises but ``CancelledError`` (an error is logged, its
    message acked)."""

    async def alone(request: TaskRequest, taskdef: TaskDef, event: EventT[Any]) -> None:
        await _guarded(run_once(request, taskdef), event)
        await acks.ack(event)

    calls: list[Call] = []
    others: list[tuple[asyncio.Future[None], TaskRequest]] = []
    try:
        for event in events:
            set_current(event)
            ready = None if app.stopping else await _guarded(prepare(event), event)  # stopping: acks do not count
            if ready is None:
                await acks.ack(event)
                continue
            request, taskdef = ready
            if batchable(taskdef, request) and app.running.claim(request):
                calls.append(Call(event, request, taskdef))
            else:
                others.append((asyncio.ensure_future(alone(request, taskdef, event)), request))
        if calls:
            await _guarded(run_batch(calls, lambda call: _guarded(run_once(call.request, call.taskdef), call.event),
                                     acks.ack), calls[0].event)
        if others:
            await asyncio.gather(*(other for other, _ in others))
    except BaseException:
        _let_go(others)
        raise
    finally:
        await acks.ack_rest()  # what a bug left unhandled, or the stop cut short: as Faust would


def _let_go(others: list[tuple[asyncio.Future[None], TaskRequest]]) -> None:
    """Cancel the one-message tasks of a batch cut short (the worker is stopping): their
    messages are read again, and until then no status read here answers from them."""
    for other, request in others:
        other.cancel()
        app.running.reading(request, done=True)


async def _guarded(step: Awaitable[_T], event: EventT[Any]) -> Optional[_T]:
    """Await ``step`` for ``event``'s message; ``None`` if it raised (logged; a record
    that could not be written stops the worker, and the message is read again by the
    partition's next owner)."""
    try:
        return await step
    except RecordWriteError as exc:
        app.fatal(f"task message {event.message.topic}-{event.message.partition}@{event.message.offset}: {exc}")
    except Exception:
        msg = event.message
        logger.exception("worker %s: error handling message %s-%s@%s", settings.worker_id, msg.topic,
                         msg.partition, msg.offset)
    return None


async def prepare(event: EventT[Any]) -> Optional[tuple[TaskRequest, TaskDef]]:
    """Decode one task message and route it: to its own partition, the sequencer, or
    the dead letters; the task to run once its partition's status rows are caught up,
    or ``None`` if there is nothing to run here."""
    msg = event.message
    app.consumer.delivered(msg.tp, msg.offset)  # type: ignore[attr-defined]  # delivered() is yadtq_app.kafka.consumer.Consumer's
    default_id = f"{msg.topic}-{msg.partition}-{msg.offset}"
    try:
        request = parse_task_message(event.value, max_bytes=settings.max_message_bytes,
                                     max_depth=settings.max_nesting, default_id=default_id)
    except InvalidTask as exc:
        await reject(exc, msg.topic, msg.partition, msg.offset, raw=event.value, key=event.key)
        return None
    if event.key != request.key or msg.partition != partition_of(request.key, settings.partitions):
        # Route by the id, not by where the record arrived (another key, none, a
        # producer with another partitioner, or an explicit partition): re-send it
        # keyed by its id, so it runs in the partition that holds its status row.
        logger.info("task %s arrived with key %r in partition %d; re-sending it keyed by its id", request.id,
                    event.key, msg.partition)
        await (await task_topic.send(key=request.key, value=request.encode()))
        return None
    try:
        taskdef = app.registry.get(request.task)
    except UnknownTask as exc:
        exc.task_id = request.id
        await reject(exc, msg.topic, msg.partition, msg.offset, raw=event.value, key=event.key, task=request.task)
        return None
    app.metrics.task_received(request.task)
    if request.ordering_key is not None and not request.sequenced:
        await enqueue(request)  # its turn comes from the sequencer (yadtq_app.ordering)
        return None
    app.running.reading(request)  # GET /tasks/{id} answers queued from here until its claim
    go = False
    try:
        if not await may_act(msg.partition):
            logger.info("worker %s: task %s: partition %d moved to another worker; leaving it there",
                        settings.worker_id, request.id, msg.partition)
        else:
            go = msg.partition in _caught_up or await _catch_up(request, msg.partition)
    finally:
        if not go:
            app.running.reading(request, done=True)
    return (request, taskdef) if go else None


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
    async with app.running.handling(request), slots.one(give_up=lambda: app.revoking or app.stopping) as started:
        if started:
            await execute(request, taskdef)
        else:
            logger.info("task %s: a rebalance or a stop began while it waited for a free slot; leaving it to be "
                        "read again", request.id)


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
        if decision.action == RUN and state is not None and leased_by_another(state, settings.worker_id) \
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


async def run_attempt(request: TaskRequest, taskdef: TaskDef, attempt: int, state: Optional[TaskState]) -> bool:
    """Run one attempt and report its outcome; True if the task is final (not retrying)."""
    opened = open_attempt(request, taskdef, attempt, state, asyncio.get_running_loop())
    gate = asyncio.Event()

    async def body() -> Outcome:
        await gate.wait()  # start after the processing event, so progress events come after it
        if not await still_ours():
            raise _NotStarted
        return await run_task(taskdef, list(request.task_args), dict(request.task_kwargs), timeout=opened.timeout,
                              threads=app.threads, context=opened.context, processes=app.processes,
                              max_result_bytes=settings.max_result_bytes)

    # No await since the status row was read: a cancel folded from now on finds the job.
    job = asyncio.ensure_future(body())
    current = faust.current_event()
    track_attempt(opened, job, current.message.partition if current is not None else -1)
    try:
        await record_start(request, attempt, state, opened.started)
        gate.set()
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
        close_attempt(opened, job)
    try:
        return await finish_attempt(request, taskdef, attempt, state, opened.options, outcome, opened.started)
    finally:
        app.running.end(request.id)  # leased until its outcome is recorded


class _NotStarted(Exception):
    """The attempt's code had not begun when its worker found the task message no
    longer its own to act on (:func:`agents.ownership.still_ours`): it is read again by
    the partition's owner."""
