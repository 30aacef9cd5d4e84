"""``execute_tasks``: consume the task topic and run registered tasks.

The agent is thin: decode with :func:`yadtq_app.records.parse_task_message`, decide
with the status row (:func:`yadtq_app.state.decide`: run, skip a stale duplicate,
defer to its eta, or end a cancelled attempt), run with
:func:`yadtq_app.execution.run_task`, and report each step as a
:class:`~yadtq_app.records.TaskEvent`. A failed attempt with retries left is reported
``retrying`` with its next start; the scheduler (:mod:`agents.schedule`) sends the
message for the next attempt when it is due. Nothing escapes the loop: Faust acks a
message whose handler raised, which would lose the task silently.

Its concurrency is ``YADTQ_CONCURRENCY``: that many actors share the topic's stream,
so a slow task does not hold up the rest of its partition. Faust commits an offset
only once every message before it is acked, so a crash redelivers unfinished work.

A message fetched before the latest rebalance is not acted on: it is read again from
the committed offset by the partition's owner in the new generation (a worker frozen
past its session would otherwise run what it had fetched, a second time).

Each attempt runs as its own asyncio task, registered in ``app.running`` before the
first ``await`` after the status row was read: a ``cancel`` folded by the status agent
either is seen in that row or finds the attempt and cancels it, so a cancelled task
never starts.

Leases: a task keeps running on its worker across a rebalance. Before that worker
waits for its running tasks at the start of a rebalance (Faust does, before it rejoins
the group), it sends a ``processing`` event with a lease (:data:`LEASE` seconds) for
each, and renews them while it runs tasks of partitions it no longer holds. A worker
can be left out of the next generation while it waits — the embedded broker forms it
after about a second, Kafka after the rebalance timeout — and then the workers that get
its partitions read those tasks again: the lease, folded into the row before they got
the partitions, tells them to wait for the outcome rather than run the task a second
time (:data:`yadtq_app.state.WAIT`). The outcome of a task that ends meanwhile goes
through the events topic, to whoever owns the partition by then. A worker that dies
renews nothing: its tasks run again once the lease runs out, which it does before the
group notices the death (a lease is three heartbeats; the session timeout at least
that). Without leases, a long task in flight during any rebalance could run twice.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
import urllib.parse
from typing import Any, AsyncIterable, Optional

import aiohttp
import faust
from faust.types import EventT

from yadtq_app.agents.ordering import enqueue, send_done
from yadtq_app.agents.status import OUTCOMES, fold, wait_caught_up
from yadtq_app.application import app, settings
from yadtq_app.compat import stale_ack
from yadtq_app.context import ProgressReporter, TaskContext
from yadtq_app.errors import InvalidTask, RecordWriteError, UnknownTask
from yadtq_app.execution import Outcome, clip_head, run_task
from yadtq_app.peers import ROUTED_HEADER
from yadtq_app.records import (
    CANCELLED,
    FAILED,
    PROCESSING,
    PROGRESS,
    RETRYING,
    SCHEDULED,
    SUCCESS,
    TERMINAL,
    DeadLetter,
    TaskEvent,
    TaskRequest,
    TaskState,
    is_utf8,
    parse_task_message,
    partition_of,
    raw_sample,
)
from yadtq_app.registry import TaskDef
from yadtq_app.state import CANCEL_NOW, DEFER, SKIP, WAIT, attempt_record, cancelled_error, decide, end_of_attempt
from yadtq_app.tables.task_status import get_status, task_status
from yadtq_app.topics import dead_letter_topic, events_topic, task_topic

logger = logging.getLogger(__name__)

_TASK_TOPIC = task_topic.get_topic_name()

#: Tasks running on this worker: id → done. A second message with the same id waits
#: for the first to finish, then is skipped (one execution per id).
_running: dict[str, asyncio.Event] = {}
#: Task partitions whose status rows are known complete since the last rebalance.
_caught_up: set[int] = set()
#: Attempts running here: id → (request, attempt, started, task partition), for leases.
_in_flight: dict[str, tuple[TaskRequest, int, float, int]] = {}

#: How long a lease holds a running attempt for its worker (s): three heartbeats.
LEASE = settings.effective_worker_timeout
#: How often a worker renews the leases of tasks whose partitions it does not hold (s).
LEASE_RENEW = settings.heartbeat_interval
#: How often a worker waiting on another's lease looks at the row again (s).
LEASE_POLL = 0.05


@app.on_partitions_assigned.connect
async def _on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
    # Any rebalance may have moved partitions here whose last events are unfolded.
    _caught_up.clear()
    app.freeze_guard.on_assigned()


@app.timer(interval=0.1, name="yadtq.freeze_guard_tick")
async def _tick_freeze_guard() -> None:
    app.freeze_guard.tick()


#: Keys of the task messages whose attempts were leased when the current rebalance began.
_leased_keys: set[bytes] = set()


async def lease_in_flight() -> None:
    """A rebalance begins: lease every attempt running here (see the module docs); the
    rebalance then goes on without waiting for them (:func:`_lease_covers`)."""
    _leased_keys.clear()
    _leased_keys.update(await send_leases(list(_in_flight)))


def _lease_covers(message: Any) -> bool:
    """Whether ``message`` is a task message whose task's running attempt holds a lease
    sent at the start of this rebalance (a duplicate of it waiting behind the attempt
    is skipped once the attempt ends: it was fetched before the rebalance)."""
    return message.topic == _TASK_TOPIC and message.key in _leased_keys


app.lease_covers = _lease_covers


@app.timer(interval=LEASE_RENEW, name="yadtq.renew_leases")
async def _renew_leases() -> None:
    """Renew the leases of attempts whose partitions this worker does not hold now."""
    ids = [t for t, (_, _, _, partition) in _in_flight.items()
           if app.revoking or not app.may_act_now(_TASK_TOPIC, partition)]
    if ids:
        await send_leases(ids)
        await cancel_if_requested(ids)


async def cancel_if_requested(ids: list[str]) -> None:
    """Cancel the attempts of ``ids`` running here whose rows, on the workers that own
    them now, ask for it: a cancel for a task whose partition moved while it ran here
    (a lease) is folded by the new owner, which cannot reach the attempt itself."""
    for task_id in ids:
        row = await _row_from_owner(task_id)
        if row is not None and (row.get("cancel_requested") or row.get("status") == CANCELLED) \
                and app.running.cancel(task_id):
            logger.info("worker %s: task %s: cancelled here at its owner's request (leased attempt)",
                        settings.worker_id, task_id)


async def _row_from_owner(task_id: str) -> Optional[dict[str, Any]]:
    """The status row of ``task_id`` as the worker owning its partition has it, or
    ``None`` (no row, no owner known, no answer)."""
    try:
        owner = str(app.router.key_store(task_status.name, task_id.encode()))
    except Exception:  # noqa: BLE001 - no owner known now (a rebalance): ask next time
        return None
    if owner == str(app.conf.canonical_url):
        state = get_status(task_id)
        return state.to_json() if state is not None else None
    url = f"{owner.rstrip('/')}/tasks/{urllib.parse.quote(task_id, safe='')}"
    try:
        async with app.http_client.get(url, headers={ROUTED_HEADER: "1"},
                                       timeout=aiohttp.ClientTimeout(total=2)) as resp:
            return await resp.json() if resp.status == 200 else None  # type: ignore[no-any-return]
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return None


async def send_leases(ids: list[str], *, timeout: float = 5.0) -> set[bytes]:
    """Send a lease for each of ``ids`` that still runs here; wait until the broker has
    them. The keys of the tasks leased (none if the broker did not confirm them all)."""
    now = time.time()
    sent = []
    keys = set()
    for task_id in ids:
        entry = _in_flight.get(task_id)
        if entry is None:
            continue
        request, attempt, started, _ = entry
        event = _event(request, PROCESSING, attempt=attempt, started_at=started, lease_until=now + LEASE)
        sent.append(await events_topic.send(key=request.key, value=event))
        keys.add(request.key)
    if not sent:
        return set()
    try:
        await asyncio.wait_for(asyncio.gather(*sent), timeout)
    except Exception:  # noqa: BLE001 - a lost lease costs a second run at worst
        logger.exception("worker %s: could not send the leases of %d running tasks", settings.worker_id, len(sent))
        return set()
    logger.info("worker %s: leased %d running tasks for %.1f s", settings.worker_id, len(sent), LEASE)
    return keys


app.on_revoking.append(lease_in_flight)


@app.agent(task_topic, name="yadtq.execute_tasks", concurrency=settings.concurrency)
async def execute_tasks(stream: AsyncIterable[Any]) -> None:
    """Run each task message; never raises."""
    async for event in stream.events():  # type: ignore[attr-defined]
        try:
            await handle_task_message(event)
        except RecordWriteError as exc:
            # Not acknowledged: the message is read again by the partition's next owner.
            app.fatal(f"task message {event.message.topic}-{event.message.partition}@{event.message.offset}: {exc}")
        except Exception:  # noqa: BLE001 - see module docs
            msg = event.message
            logger.exception("worker %s: error handling message %s-%s@%s", settings.worker_id,
                             msg.topic, msg.partition, msg.offset)


async def handle_task_message(event: EventT) -> None:
    msg = event.message
    app.consumer.delivered(msg.tp, msg.offset)  # type: ignore[attr-defined]  # yadtq_app.compat.Consumer
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
    app.metrics.received.labels(request.task).inc()
    if request.ordering_key is not None and not request.sequenced:
        await enqueue(request)  # its turn comes from the sequencer (yadtq_app.ordering)
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
        elif app.rebalancing:
            # Whoever owns the partition next reads this message again from the committed
            # offset (acks from before the seek do not count: yadtq_app.compat), with the
            # partition's status caught up by then.
            logger.info("task %s: a rebalance began before partition %d's status caught up; leaving it to be "
                        "read again", request.id, msg.partition)
            return
        else:
            # Not knowing is no reason to drop a task (Faust would commit past it):
            # run it, at the risk of a second run if it had finished elsewhere.
            logger.warning("worker %s: task %s: status of partition %d not known to be complete; "
                           "running it anyway (at least once)", settings.worker_id, request.id, msg.partition)
    await run_once(request, taskdef)


async def run_once(request: TaskRequest, taskdef: TaskDef) -> None:
    """Act on ``request`` unless the same id is being handled here (one execution per id)."""
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
    """Decide from the status row (:func:`yadtq_app.state.decide`), then act."""
    if _fetched_before_rebalance():
        # A rebalance since this message was fetched (e.g. the worker was frozen) means
        # it is read again from the committed offset, by whichever worker owns its
        # partition now; its ack is not counted (yadtq_app.compat.stale_ack).
        logger.info("task %s: fetched before the last rebalance; leaving it to be read again", request.id)
        return
    waited = False
    while True:
        state = get_status(request.id)
        finished = app.finished.get(request.id)
        decision = decide(state, request, finished=finished, now=time.time(), worker=settings.worker_id)
        if decision.action != WAIT:
            break
        if not waited:
            logger.info("task %s: not running it yet: %s", request.id, decision.why)
            waited = True
        await asyncio.sleep(LEASE_POLL)
        if not await _still_ours():
            return  # read again by whoever owns the partition next
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


async def run_attempt(request: TaskRequest, taskdef: TaskDef, attempt: int, state: Optional[TaskState]) -> bool:
    """Run one attempt and report its outcome; True if the task is final (not retrying)."""
    options = {**(state.options if state is not None else {}), **request.options}
    timeout = options.get("timeout") or taskdef.timeout or settings.default_timeout
    stats = app.stats
    stats.in_progress += 1
    started = time.time()
    reporter = ProgressReporter(functools.partial(_send_progress, request, attempt), asyncio.get_running_loop())
    context = TaskContext(id=request.id, name=request.task, attempt=attempt, worker=settings.worker_id,
                          started_at=started, reporter=reporter)
    gate = asyncio.Event()

    async def body() -> Outcome:
        await gate.wait()  # start after the processing event, so progress events come after it
        if not await _still_ours():
            raise _NotStarted  # e.g. frozen between the decision and here (see _NotStarted)
        return await run_task(taskdef, list(request.task_args), dict(request.task_kwargs), timeout=timeout,
                              threads=app.threads, context=context, processes=app.processes,
                              max_result_bytes=settings.max_result_bytes)

    # No await since the status row was read: a cancel folded from now on finds the job.
    job = asyncio.ensure_future(body())
    app.running.add(request.id, job)
    current = faust.current_event()
    _in_flight[request.id] = (request, attempt, started, current.message.partition if current is not None else -1)
    try:
        await record_start(request, attempt, state, started)
        gate.set()
        logger.debug("worker %s: task %s (%s) attempt %d starts", settings.worker_id, request.id,
                     request.task, attempt)
        outcome: Optional[Outcome] = await job
    except _NotStarted:
        logger.info("task %s: partition moved before the attempt started; leaving it to its owner", request.id)
        app.running.drop_start(request.id)
        _in_flight.pop(request.id, None)
        return False
    except asyncio.CancelledError:
        if not (job.cancelled() and app.running.was_cancelled(request.id)):
            job.cancel()
            app.running.drop_start(request.id)  # never started, as far as the table knows
            _in_flight.pop(request.id, None)
            raise  # the worker is stopping: the message is redelivered
        outcome = None
    except BaseException:
        _in_flight.pop(request.id, None)
        raise
    finally:
        reporter.close()
        app.running.remove(request.id, job)
        stats.in_progress -= 1
    try:
        return await finish_attempt(request, taskdef, attempt, state, options, outcome, started)
    finally:
        _in_flight.pop(request.id, None)  # leased until its outcome is recorded


class _NotStarted(Exception):
    """An attempt's code had not begun when its worker found the partition no longer its
    own to act on: it was frozen (SIGSTOP, a stall) between deciding to run the task and
    running it, and the group moved the partition meanwhile, or a rebalance began. Seen:
    a worker resumed after SIGSTOP ran three tasks the survivor had already run. The
    message is read again by the partition's owner (the ack here does not count: the
    generation changed, the membership was lost, or flow control is off)."""


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


async def dead_letter_exhausted(request: TaskRequest, attempt: int, state: Optional[TaskState], outcome: Outcome,
                                started: float, max_retries: int) -> None:
    """A task that ended failed: into the dead-letter topic, with every attempt; the
    reason is ``retries-exhausted`` if it had retries (``max_retries`` > 0), else ``failed``."""
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


async def _send_progress(request: TaskRequest, attempt: int, progress: dict[str, Any]) -> None:
    await report(request, PROGRESS, attempt=attempt, progress=progress)


async def reject(exc: InvalidTask, topic: str, partition: int, offset: int, *, raw: Optional[bytes],
                 key: Optional[bytes], task: Optional[str] = None) -> None:
    """Account for a message that will never run: count it, dead-letter it, fail its status."""
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


#: What the executing worker writes into the status table itself (see ``report``).
OWN_KINDS = frozenset({SCHEDULED, PROCESSING, RETRYING, SUCCESS, FAILED, CANCELLED})


#: How long an attempt runs before its ``processing`` row is written (s); see :func:`record_start`.
START_RECORD_DELAY = 0.05


async def record_start(request: TaskRequest, attempt: int, state: Optional[TaskState], started: float) -> None:
    """Record that an attempt started, once it has run for :data:`START_RECORD_DELAY`
    (nothing, if the task's partition is no longer this worker's to act on: then the
    attempt does not start either, see :class:`_NotStarted`).

    Most tasks finish sooner, and then their outcome records the start with it: one
    status write per attempt instead of two. Every read answers true meanwhile, because
    reads of a row go to the worker that owns it, which overlays the held start
    (:func:`tables.task_status.get_status`), and any other event for the task records
    the held start before itself (:func:`agents.status.fold`). A crash before the start
    is written costs nothing: the message is redelivered and run again (attempt 1 again).
    """
    if not await _owns_current_partition(request):
        return  # the partition moved away, or is moving (a rebalance, a freeze)
    app.running.defer_start(request.id, functools.partial(_event, request, PROCESSING, attempt=attempt,
                                                          state=state, at=started))
    asyncio.get_running_loop().call_later(START_RECORD_DELAY, _write_start, request.id, attempt,
                                          context=contextvars.copy_context())


def _write_start(task_id: str, attempt: int) -> None:
    """Write a held start that is still held (runs in the task message's context)."""
    start = app.running.unrecorded_start(task_id)
    if start is None or start.attempt != attempt:
        return
    app.running.drop_start(task_id)
    current = faust.current_event()
    if current is None or app.revoking or _fetched_before_rebalance() \
            or not app.may_act_now(current.message.topic, current.message.partition):
        return  # the partition moved away meanwhile, or may be moving (its lease records the start)
    try:
        fold(start)
    except Exception:  # noqa: BLE001 - the outcome will record the start
        logger.exception("task %s: could not record its start", task_id)


def _event(request: TaskRequest, kind: str, *, attempt: int, state: Optional[TaskState] = None,
           result: Any = None, error: Optional[dict[str, Any]] = None, at: Optional[float] = None,
           started_at: Optional[float] = None, next_run_at: Optional[float] = None,
           progress: Optional[dict[str, Any]] = None, lease_until: Optional[float] = None) -> TaskEvent:
    options = state.options if state is not None and state.options else request.options
    return TaskEvent(id=request.id, kind=kind, task=request.task, task_args=list(request.task_args),
                     task_kwargs=dict(request.task_kwargs), attempt=attempt, worker=settings.worker_id,
                     at=time.time() if at is None else at, submitted_at=request.submitted_at, result=result,
                     error=error, options=options, next_run_at=next_run_at, progress=progress,
                     started_at=started_at, lease_until=lease_until)


async def report(request: TaskRequest, kind: str, *, attempt: int, state: Optional[TaskState] = None,
                 result: Any = None, error: Optional[dict[str, Any]] = None, at: Optional[float] = None,
                 started_at: Optional[float] = None, next_run_at: Optional[float] = None,
                 progress: Optional[dict[str, Any]] = None, wait: bool = False) -> None:
    """Record a status event for ``request``.

    The worker running a task owns its status row (the task topic, events topic and
    status table are co-partitioned), so inside the task agent the event is folded
    straight into the table: the status is visible at once, with no trip through the
    events topic. The changelog write is durable before the task's offset is committed
    (Faust flushes the producer before every commit), so a crash in between redelivers
    the task rather than losing its status. Anywhere else — a progress report from a
    background task, or a worker whose partition moved while it ran — the event goes
    through the events topic (with ``wait``, until the broker has it) and the owner's
    status agent folds it, fenced by attempt.
    """
    event = _event(request, kind, attempt=attempt, state=state, result=result, error=error, at=at,
                   started_at=started_at, next_run_at=next_run_at, progress=progress)
    if kind in OUTCOMES:
        app.running.drop_start(request.id)  # the outcome records the start with it
    if kind in OWN_KINDS and await _owns_current_partition(request):
        try:
            fold(event)
            return
        except Exception:  # noqa: BLE001 - fall back to the events topic
            logger.exception("task %s: could not record %s locally; sending it as an event", request.id, kind)
    try:
        fut = await events_topic.send(key=request.key, value=event)
        if wait:
            await fut
    except Exception as exc:
        if kind == PROGRESS:  # progress is advice: the outcome supersedes it
            logger.warning("task %s: could not send its progress: %r", request.id, exc)
            return
        raise RecordWriteError(f"task {request.id}: could not record {kind}: {exc!r}") from exc


async def _still_ours() -> bool:
    """Whether the current task message may still be acted on: no rebalance began since
    it was fetched, this worker holds its partition, and (waited for) the group's
    heartbeats succeed: a worker cut off from the broker starts nothing."""
    current = faust.current_event()
    if current is None or app.revoking or _fetched_before_rebalance():
        return False
    if not await app.may_act_on(current.message.topic, current.message.partition, strict=True):
        return False
    return not (app.revoking or _fetched_before_rebalance())  # as it is after the wait


def _fetched_before_rebalance() -> bool:
    current = faust.current_event()
    if current is None or current.message.topic != _TASK_TOPIC:
        return False
    return stale_ack(current.message.generation_id, app.consumer_generation_id)


async def _owns_current_partition(request: TaskRequest) -> bool:
    """Inside the task agent, on the task's own partition (keyed by its id, not a stray
    record from another producer), which this worker still owns and is not giving up
    (a rebalance under way: another worker may already own it, see the module docs)."""
    current = faust.current_event()
    if current is None or current.message.topic != _TASK_TOPIC or current.message.key != request.key \
            or app.revoking or _fetched_before_rebalance():
        # Also after a rebalance that returned the partition here: an attempt that ran
        # across it reports through the events topic, fenced like any other worker's.
        return False
    if not await app.may_act_on(current.message.topic, current.message.partition, strict=True):
        return False
    # Asked again after the wait: a rebalance may have begun or ended meanwhile (seen: an
    # outcome folded here while the table was being rebuilt was lost, the row stayed
    # ``processing``).
    return not (app.revoking or _fetched_before_rebalance())

