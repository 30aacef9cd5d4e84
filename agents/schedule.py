"""Timers that act on time: start waiting tasks when due, and expire old results.

**Scheduler** (every :data:`TICK` s). Countdown/eta tasks and retries wait in the
``task-schedule`` table (see :mod:`tables.schedule`), never in a partition: each
worker scans the entries of the partitions it owns (when the earliest entry it knows of
is due, when an entry is written (:func:`entry_written`) or partitions are assigned, and
at least every :data:`MAX_SCAN_GAP` s) and, for every entry that is due,
sends a task message naming the attempt it starts (``"attempt": n``). The message
goes through the task topic like any other, so the one execution path
(:func:`agents.tasks.execute`) applies: the status agent removes the entry once
the attempt starts. A message sent twice (a crash between sending and the entry's
removal, or a dispatch repeated after :data:`REDISPATCH_AFTER`) is harmless:
:func:`yadtq_app.state.decide` skips a message for an attempt the row has moved past.

**Result expiry** (every ``clamp(ttl / 4, 0.5 s, 5 min)``): finished rows older than
``YADTQ_RESULT_TTL`` are deleted through the status agent (an ``expire`` event), so
the table has one writer and the deletion reaches the changelog. The sweep reads
every row of the worker's partitions; at 100,000 rows that is about a second of CPU
per sweep (measured order of magnitude), hence the long interval by default.

Both skip while the worker rebalances, and read only active partitions (Faust's
RocksDB store iterates the partitions this worker owns).
"""

from __future__ import annotations

import asyncio
import logging
import time

from yadtq_app.application import app, settings
from yadtq_app.records import EXPIRE, TERMINAL, TaskEvent, TaskRequest
from yadtq_app.state import schedule_of
from yadtq_app.tables.schedule import task_schedule
from yadtq_app.tables.task_status import task_status
from yadtq_app.topics import events_topic, task_topic

logger = logging.getLogger(__name__)

#: Seconds between two scheduler scans (the lateness of a due task, at most).
TICK = 0.05
#: Send a due entry's message again if its attempt has not started after this long.
REDISPATCH_AFTER = 30.0
#: Rows read between two yields to the event loop during an expiry sweep.
SWEEP_BATCH = 2_000
#: The longest the scheduler goes without scanning the table (s), whatever it knows.
MAX_SCAN_GAP = 1.0

#: When the scheduler scans next (Unix s): the earliest time an entry may need it.
_next_scan = 0.0


def entry_written(due: float) -> None:
    """A schedule entry due at ``due`` was written: scan by then."""
    global _next_scan
    _next_scan = min(_next_scan, due)


async def _on_assigned(*args: object, **kwargs: object) -> None:
    global _next_scan
    _next_scan = 0.0  # entries recovered with the new partitions are not known yet


app.on_partitions_assigned.connect(_on_assigned)

#: task id → ((generation, attempt), when sent): what this worker has dispatched.
_dispatched: dict[bytes, tuple[tuple[int, int], float]] = {}


@app.timer(  # type: ignore[untyped-decorator]  # Faust declares App.timer @no_type_check
    interval=TICK, name="yadtq.dispatch_due")
async def dispatch_due() -> None:
    """Send the task message of every waiting task whose time has come."""
    global _next_scan
    now = time.time()
    if app.rebalancing or now < _next_scan:
        return
    _next_scan = now + MAX_SCAN_GAP
    due = []
    for key, entry in task_schedule.items():
        if entry.due <= now:
            due.append((key, entry))
        else:
            _next_scan = min(_next_scan, entry.due)
    for key, entry in due:
        mark = (entry.generation, entry.attempt)
        sent = _dispatched.get(key)
        if sent is not None and sent[0] == mark and now - sent[1] < REDISPATCH_AFTER:
            continue  # looked at again within MAX_SCAN_GAP, while its removal is on its way
        row = task_status.get(key)
        wanted = schedule_of(row)
        if wanted is None or (wanted.generation, wanted.attempt) != mark:
            continue  # the entry's removal is on its way
        request = TaskRequest(id=row.id, task=row.task, task_args=list(row.task_args),
                              task_kwargs=dict(row.task_kwargs), submitted_at=row.submitted_at,
                              max_retries=row.options.get("max_retries"), timeout=row.options.get("timeout"),
                              ordering_key=row.options.get("ordering_key"), attempt=entry.attempt,
                              sequenced=True if row.options.get("ordering_key") else None)
        await task_topic.send(key=key, value=request.encode())
        _dispatched[key] = (mark, now)
        logger.debug("task %s: attempt %d dispatched (%.3f s after due)", row.id, entry.attempt, now - entry.due)
    if len(_dispatched) > 10_000:
        for key in [k for k, (_, at) in _dispatched.items() if now - at > REDISPATCH_AFTER]:
            del _dispatched[key]


def sweep_interval(ttl: float) -> float:
    return min(300.0, max(0.5, ttl / 4))


@app.timer(  # type: ignore[untyped-decorator]  # Faust declares App.timer @no_type_check
    interval=sweep_interval(settings.result_ttl), name="yadtq.expire_results")
async def expire_results() -> None:
    """Ask the status agent to delete finished rows past the result TTL."""
    ttl = settings.result_ttl
    if ttl <= 0 or app.rebalancing:
        return
    now = time.time()
    expired = 0
    for n, row in enumerate(list(task_status.values()), 1):
        if row.status in TERMINAL and row.finished_at is not None and row.finished_at + ttl <= now:
            await events_topic.send(key=row.id.encode(), value=TaskEvent(id=row.id, kind=EXPIRE, task=row.task,
                                                                          at=now))
            expired += 1
        if n % SWEEP_BATCH == 0:
            await asyncio.sleep(0)
    if expired:
        logger.info("worker %s: %d finished tasks past the result TTL of %g s", settings.worker_id, expired, ttl)
