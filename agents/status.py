"""``record_status`` and :func:`fold`: how events reach the ``task-status`` and
``task-schedule`` tables.

:func:`fold` applies one :class:`~yadtq_app.records.TaskEvent` to its row with the pure
:func:`yadtq_app.state.apply_event` and keeps the task's schedule entry in step with
the row (:func:`yadtq_app.state.schedule_of`). It is the only code that writes these
tables, and it never awaits, so its read-modify-write is atomic on the event loop. It
runs in the status agent for events that arrive through the events topic (submissions,
cancel/retry requests, progress, other workers), and in the task agent for the tasks
that worker runs (see ``agents.reporting.report``); an attempt's ``processing`` event is
held for a moment first (``agents.reporting.record_start``), and written by whichever
comes first: a timer, the attempt's outcome, or a cancel or progress event. Side
effects of a fold on this worker, which owns the task's partition: a ``cancel`` for a
running attempt cancels it here; an ``expire`` deletes a finished row past the result
TTL.

A record may carry several events of its partition (a bulk submission's ``queued``
events: :meth:`~yadtq_app.records.TaskEvent.batch`); they are folded in order. The
agent reports each record it folded to :func:`yadtq_app.catch_up.mark_folded`, so
the task agent and the HTTP API can wait until what was written is in the table.
"""

from __future__ import annotations

import logging
from typing import Any, AsyncIterable, Iterable, Optional

from yadtq_app.agents.schedule import entry_written
from yadtq_app.application import app, settings
from yadtq_app.catch_up import mark_folded
from yadtq_app.errors import RecordTooLarge
from yadtq_app.kafka.commits import stale_ack
from yadtq_app.records import (
    CANCEL,
    CANCELLED,
    EXPIRE,
    FAILED,
    PROGRESS,
    QUEUED,
    REQUEUE,
    RETRYING,
    SUCCESS,
    TERMINAL,
    ScheduledRun,
    TaskEvent,
    TaskState,
)
from yadtq_app.state import apply_event, schedule_of, unrecordable_outcome
from yadtq_app.tables.schedule import task_schedule
from yadtq_app.tables.task_status import task_status
from yadtq_app.topics import events_topic

logger = logging.getLogger(__name__)

#: The events that end an attempt.
OUTCOMES = frozenset({SUCCESS, FAILED, RETRYING, CANCELLED})
#: The events whose effect depends on whether the attempt has started: a held start is
#: recorded before them (any other event applies to the row as written and leaves the
#: held start held).
NEEDS_START = frozenset({CANCEL, PROGRESS})


@app.agent(events_topic, name="yadtq.record_status")
async def record_status(stream: AsyncIterable[Any]) -> None:
    """Apply task events to the status table."""
    async for event in stream.events():  # type: ignore[attr-defined]
        value = event.value
        msg = event.message
        app.consumer.delivered(msg.tp, msg.offset)  # type: ignore[attr-defined]  # yadtq_app.kafka.consumer.Consumer
        if not await app.may_act_on(msg.topic, msg.partition) \
                or stale_ack(msg.generation_id, app.consumer_generation_id):
            # A frozen worker's leftovers, or fetched before a rebalance that ended while
            # this waited: the partition's owner reads it again and folds it.
            continue
        try:
            events = value.unpacked()
        except Exception:
            logger.exception("could not unpack the event batch at %s-%d@%d", msg.topic, msg.partition, msg.offset)
            events = []
        held: dict[str, TaskEvent] = {}
        for one in events:
            try:
                if one.id in held:
                    fold(held.pop(one.id))  # written before what follows it
                if _holdable(one, len(held)):
                    held[one.id] = one
                else:
                    fold(one)
            except Exception:
                logger.exception("task %s: could not apply %s event", getattr(one, "id", "?"),
                                 getattr(one, "kind", "?"))
        if not app.held.hold(event, list(held.values())):
            _fold_all(held.values())  # a rebalance or a stop began meanwhile: written now
        mark_folded(msg.partition, msg.offset)


def _fold_all(events: Iterable[TaskEvent]) -> None:
    for one in events:
        try:
            fold(one)
        except Exception:
            logger.exception("task %s: could not apply its queued event", one.id)


def _holdable(event: TaskEvent, holding: int) -> bool:
    """Whether ``event`` is a submission's ``queued`` event to hold rather than write
    (``yadtq_app.held_submissions``): its task has no row and nothing held here yet,
    and there is room (none from the start of a rebalance or a stop until the next
    assignment: :meth:`~yadtq_app.held_submissions.HeldSubmissions.close`)."""
    return event.kind == QUEUED and event.next_run_at is None and app.held.has_room(holding + 1) \
        and event.id not in app.held and task_status.get(event.id.encode()) is None


@app.timer(interval=1.0, name="yadtq.write_held")  # type: ignore[untyped-decorator]  # Faust: @no_type_check
async def write_held() -> None:
    """Write the ``queued`` rows held for ``YADTQ_QUEUED_HOLD`` seconds whose tasks have
    not written a row yet; nothing during a rebalance (it lets go of them)."""
    for held, events in app.held.due():
        if app.rebalancing or app.revoking:
            return
        msg = held.event.message
        if not app.may_act_now(msg.topic, msg.partition):
            continue  # let go of at the coming rebalance; its next owner reads it again
        for one in events:
            try:
                held.context.run(fold, one)  # in the record's context: Faust's current event
            except Exception:
                logger.exception("task %s: could not write its held queued row", one.id)
                app.held.take(one.id)


async def _close_held() -> None:
    n = app.held.close()
    if n:
        logger.debug("worker %s: a rebalance let go of %d held queued rows (their records are read again)",
                     settings.worker_id, n)


async def _reopen_held(*args: Any, **kwargs: Any) -> None:
    app.held.reopen()


app.on_revoking.append(_close_held)
app.on_partitions_assigned.connect(_reopen_held)


def fold(event: TaskEvent) -> None:
    """Apply one event to the tables (inside the agent: Faust needs the current event).

    An attempt running here whose ``processing`` event is still held
    (``agents.reporting.record_start``) is recorded before a cancel or progress event;
    its own outcome records the start with it.
    """
    if event.kind in NEEDS_START:
        start = app.running.take_start(event.id)
        if start is not None:
            _fold(start)
    elif event.kind in OUTCOMES:
        start = app.running.take_start(event.id)
        if start is not None and (start.attempt, start.worker) != (event.attempt, event.worker):
            _fold(start)  # not this attempt's own outcome: the start must be known to fence it
    _fold(event)


def _fold(event: TaskEvent) -> None:
    key = event.id.encode()
    if event.kind == EXPIRE:
        expire(key, task_status.get(key), event)
        return
    before, held = _row_of(key, event.id)
    row = apply_event(before, event)
    if row == before and not held:
        return  # e.g. a submission's queued event arriving after the task finished: nothing to write
    try:
        task_status[key] = row
    except RecordTooLarge as exc:
        if event.kind not in OUTCOMES:
            raise
        # The outcome must be recorded, or the task would run again and again: as a
        # failure without the result (the arguments were accepted within their limit).
        logger.warning("task %s: its %s row is too large to write (%s); recording it failed", event.id,
                       event.kind, exc)
        row = apply_event(before, unrecordable_outcome(event, str(exc)))
        task_status[key] = row
    app.recent.touch(event.id)
    if row.status in TERMINAL:
        app.finish_waiters.wake(event.id)
    entry, had = schedule_of(row), schedule_of(before)
    if entry is not None:
        if entry != had:
            task_schedule[key] = ScheduledRun(due=entry.due, attempt=entry.attempt, generation=entry.generation)
            entry_written(entry.due)
    elif had is not None:
        task_schedule.pop(key, None)
    if event.kind == CANCEL and (row.cancel_requested or row.status == CANCELLED):
        if app.running.cancel(event.id):
            logger.info("task %s: cancelling its running attempt %d", event.id, row.attempts)
    elif event.kind == REQUEUE:
        app.finished.discard(event.id)


def _row_of(key: bytes, task_id: str) -> tuple[Optional[TaskState], bool]:
    """The row a fold changes: the table's, else the task's held ``queued`` row
    (``yadtq_app.held_submissions``), no longer held (True: the fold writes it)."""
    row = task_status.get(key)
    if row is None and len(app.held):
        held = app.held.take_row(task_id)
        if held is not None:
            return held, True
    return row, False


def expire(key: bytes, row: Any, event: TaskEvent) -> None:
    """Delete a finished row whose result TTL has passed (checked again here: the row
    may have been resubmitted since the sweep saw it)."""
    ttl = settings.result_ttl
    if row is None or ttl <= 0 or row.status not in TERMINAL or row.finished_at is None:
        return
    if row.finished_at + ttl > event.at:
        return
    del task_status[key]
    app.finished.discard(event.id)
