"""Pure status logic: fold a :class:`TaskEvent` into a :class:`TaskState`, and decide
what a task message should do given its row.

Statuses::

    queued ──────────────┐
    scheduled (eta) ─────┼─> processing ─> success | failed | cancelled
    retrying (backoff) <─┘        │
          ^───────────────────────┘ (a failed attempt with retries left)

    failed | cancelled ── POST /tasks/{id}/retry ──> queued (a new generation)
    queued | scheduled | retrying ── cancel ──> cancelled

Events can arrive out of order (the ``queued`` event from the submitting worker may
land after the executing worker's ``processing``), so:

* a terminal row (``success``/``failed``/``cancelled``) changes only by ``requeue``;
* ``queued`` never overwrites a later status; it only fills in what is missing;
* **fencing**: anything an attempt reports (``processing``, ``progress``, an outcome)
  is ignored once the row has moved to a later attempt — a worker that was paused
  while its partition moved and another worker re-ran the task cannot overwrite the
  newer attempt;
* the request fields (task, args, kwargs, options, submitted_at) come from whichever
  event carries them first.

A row whose ``next_run_at`` is set while it waits (``scheduled``, ``retrying``, or
requeued) has an entry in the schedule table; the scheduler sends its task message
when it is due (see :mod:`agents.schedule`). :func:`schedule_of` is that rule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Optional

from .execution import Outcome
from .fast_records import build
from .records import (
    CANCEL,
    CANCELLED,
    EVENT_KINDS,
    EXPIRE,
    FAILED,
    PROCESSING,
    PROGRESS,
    QUEUED,
    REQUEUE,
    RETRYING,
    SCHEDULED,
    SUCCESS,
    TERMINAL,
    WAITING,
    TaskEvent,
    TaskRequest,
    TaskState,
)
from .registry import TaskDef
from .settings import Settings

__all__ = ["apply_event", "attempt_record", "cancelled_error", "unrecordable_outcome", "merge_rows", "schedule_of",
           "ScheduleEntry", "decide", "leased_by_another", "Decision", "RUN", "SKIP", "DEFER", "CANCEL_NOW", "WAIT",
           "AttemptEnd", "end_of_attempt", "max_retries_of", "backoff_delay", "RANK", "MAX_HISTORY"]

RANK = {QUEUED: 0, SCHEDULED: 0, PROCESSING: 1, RETRYING: 2, SUCCESS: 3, FAILED: 3, CANCELLED: 3}
#: Attempts kept in a row's history (the newest).
MAX_HISTORY = 50
#: Characters of an attempt's error message kept in the history (the row's ``error``
#: keeps more: see ``yadtq_app.execution.MAX_ERROR_MESSAGE``).
MAX_HISTORY_MESSAGE = 500


def apply_event(state: Optional[TaskState], event: TaskEvent) -> TaskState:
    """The row after ``event``; ``state`` is the row before it (``None`` if none).

    Raises :class:`ValueError` for a kind that is not folded into rows (``expire``, or
    unknown). The input row is never mutated.
    """
    kind = event.kind
    if kind not in EVENT_KINDS or kind == EXPIRE:
        raise ValueError(f"cannot fold a {kind!r} event into a row")
    state = _row_before(state, event)
    if kind in (REQUEUE, CANCEL) and event.generation is not None and event.generation != state.generation:
        return state  # asked of an earlier generation, and read again since
    if kind == REQUEUE:
        return _requeued(state, event)
    if state.status in TERMINAL:
        return state
    if kind == CANCEL:
        return _cancelled(state, event)
    if kind in (QUEUED, SCHEDULED):
        return _submitted(state, event)
    stale = event.attempt < state.attempts or (event.attempt == state.attempts and state.status == RETRYING) \
        or _other_workers_attempt(state, event)
    if kind == PROGRESS:
        if state.status == PROCESSING and event.attempt == state.attempts and not stale:
            state.progress = event.progress
        return state
    if stale:
        return state  # fenced: an older attempt reporting late
    if kind == PROCESSING:
        return _started(state, event)
    return _ended(state, event)


def _row_before(state: Optional[TaskState], event: TaskEvent) -> TaskState:
    """A copy of ``state`` to change (a new ``queued`` row if none), with the request
    fields ``event`` carries filled in where the row lacks them."""
    if state is None:
        return build(TaskState, {"id": event.id, "task": event.task, "status": QUEUED,
                                 "task_args": list(event.task_args), "task_kwargs": dict(event.task_kwargs),
                                 "submitted_at": event.submitted_at, "options": dict(event.options)})
    state = build(TaskState, state.asdict())  # a copy, as state.derive() makes it
    if state.submitted_at is None and event.submitted_at is not None:
        state.submitted_at = event.submitted_at
    if not state.options and event.options:
        state.options = dict(event.options)
    return state


def _requeued(state: TaskState, event: TaskEvent) -> TaskState:
    """A ``requeue``: a failed or cancelled row starts a new generation."""
    if state.status in (FAILED, CANCELLED):
        state.status = QUEUED
        state.generation += 1
        state.retries = 0
        state.next_run_at = event.at
        state.result = state.error = state.progress = state.finished_at = None
        state.cancel_requested = False
    return state


def _cancelled(state: TaskState, event: TaskEvent) -> TaskState:
    """A ``cancel``: a waiting row ends now; a running one is asked to stop."""
    if state.status in WAITING:
        state.status = CANCELLED
        state.finished_at = event.at
        state.next_run_at = None
        state.error = cancelled_error("cancelled before it started")
    elif state.status == PROCESSING:
        state.cancel_requested = True
    return state


def _submitted(state: TaskState, event: TaskEvent) -> TaskState:
    """A submission (``queued``, maybe with an eta) or the executor deferring it (``scheduled``)."""
    if state.status in (QUEUED, SCHEDULED) and state.attempts == 0 and event.next_run_at is not None:
        state.status = SCHEDULED
        state.next_run_at = event.next_run_at
    return state


def _started(state: TaskState, event: TaskEvent) -> TaskState:
    """A ``processing`` event that is not fenced: the attempt runs."""
    if state.status == PROCESSING and event.attempt == state.attempts:
        # A repeat, or the running worker renewing its lease (the same worker: another
        # worker's report about this attempt was fenced by apply_event).
        if event.lease_until is not None and event.lease_until > (state.lease_until or 0.0):
            state.lease_until = event.lease_until
        return state
    state.status = PROCESSING
    state.attempts = event.attempt
    state.worker = event.worker
    state.started_at = event.started_at if event.started_at is not None else event.at
    state.next_run_at = None
    state.progress = None
    state.lease_until = event.lease_until
    state.dispatch = event.dispatch
    return state


def _ended(state: TaskState, event: TaskEvent) -> TaskState:
    """An attempt's outcome that is not fenced: ``retrying``, ``success``, ``failed`` or ``cancelled``."""
    kind = event.kind
    state.lease_until = None
    state.attempts = max(state.attempts, event.attempt)
    state.worker = event.worker
    started = event.started_at if event.started_at is not None else state.started_at
    if event.started_at is not None:  # the attempt's start may not have been recorded
        state.started_at = event.started_at
    elif state.started_at is None:
        state.started_at = event.at
    if event.attempt > 0:
        entry = attempt_record(event.attempt, event.worker, kind, started, event.at, event.error)
        state.history = [*state.history, entry][-MAX_HISTORY:]
    if kind == RETRYING:
        state.status = RETRYING
        state.retries += 1
        state.error = event.error
        state.next_run_at = event.next_run_at if event.next_run_at is not None else event.at
        return state
    state.status = kind
    state.finished_at = event.at
    state.next_run_at = None
    if kind == SUCCESS:
        state.result, state.error = event.result, None
    else:
        state.result, state.error = None, event.error
    return state


def attempt_record(attempt: int, worker: Optional[str], status: str, started_at: Optional[float],
                   finished_at: float, error: Optional[dict[str, Any]]) -> dict[str, Any]:
    """One entry of a row's ``history`` (and of a dead letter's): how an attempt ended."""
    message = error.get("message") if error else None
    if isinstance(message, str) and len(message) > MAX_HISTORY_MESSAGE:
        message = message[:MAX_HISTORY_MESSAGE] + "…"
    brief = {"type": error.get("type"), "message": message} if error else None
    return {"attempt": attempt, "worker": worker, "status": status, "started_at": started_at,
            "finished_at": finished_at, "error": brief}


def unrecordable_outcome(event: TaskEvent, why: str) -> TaskEvent:
    """The outcome to record instead of ``event``, whose row would be too large to
    write: the attempt ``failed`` with a ``RecordTooLarge`` error and no result (the
    task's arguments stay; they were accepted within the message limit)."""
    error = {"type": "RecordTooLarge", "message": f"the task's outcome could not be recorded: {why}",
             "traceback": None}
    return event.derive(kind=FAILED, result=None, error=error, progress=None)


def cancelled_error(message: str) -> dict[str, Any]:
    """The ``error`` of a cancelled task."""
    return {"type": "Cancelled", "message": message, "traceback": None}


def _progress(row: TaskState) -> tuple[int, int, int]:
    return (row.generation, row.attempts, RANK.get(row.status, 0))


def merge_rows(current: Optional[TaskState], incoming: TaskState) -> TaskState:
    """The more advanced of two versions of one row: later generation, attempt, then status.

    Used when a worker rebuilds its table from the changelog: a worker that was frozen
    can still flush writes it buffered before the freeze, landing *after* newer rows in
    the changelog. Recovery that merges instead of overwriting never lets such a stale
    row win, whatever order the versions arrive in. Ties go to ``incoming`` (the later
    write, as plain changelog replay would have it).
    """
    if current is None:
        return incoming
    return incoming if _progress(incoming) >= _progress(current) else current


class ScheduleEntry(NamedTuple):
    """When to send the message that starts ``attempt`` of a waiting task."""

    due: float
    attempt: int
    generation: int


def schedule_of(row: Optional[TaskState]) -> Optional[ScheduleEntry]:
    """The schedule entry ``row`` needs, or ``None``: set exactly while it waits for a time."""
    if row is None or row.status not in WAITING or row.next_run_at is None:
        return None
    return ScheduleEntry(due=row.next_run_at, attempt=row.attempts + 1, generation=row.generation)


# -- what a task message should do --------------------------------------------------
RUN, SKIP, DEFER, CANCEL_NOW, WAIT = "run", "skip", "defer", "cancel", "wait"


@dataclass(frozen=True)
class Decision:
    """What to do with one task message: ``run`` (as ``attempt``), ``skip``, ``defer``
    (wait for its eta: record it ``scheduled``), ``cancel`` (a cancel arrived for an
    attempt that died: end it ``cancelled``) or ``wait`` (``attempt`` still runs on the
    worker that holds its lease: look again once it ends or the lease runs out)."""

    action: str
    attempt: int = 0
    why: str = ""


def _other_workers_attempt(state: TaskState, event: TaskEvent) -> bool:
    """An event about the attempt the row says is running, from a worker that is not
    running it: a worker that lost the task's partition (it froze, or died) before its
    start was recorded, while the new owner runs the task again under the same attempt
    number. Its report is stale. A cancel completed by the partition's new owner for
    the attempt its dead worker was running is not."""
    if state.status != PROCESSING or event.attempt != state.attempts or event.worker == state.worker:
        return False
    return not (event.kind == CANCELLED and state.cancel_requested)


def leased_by_another(row: TaskState, worker: str) -> bool:
    """Whether ``row`` is an attempt another worker than ``worker`` holds a lease on."""
    return row.status == PROCESSING and row.lease_until is not None and row.worker != worker


def decide(row: Optional[TaskState], request: TaskRequest, *, finished: Optional[tuple[str, int]] = None,
           now: float, worker: Optional[str] = None) -> Decision:
    """Decide from the status row (and this worker's memory of what it finished).

    A message without ``attempt`` is a submission and stands for attempt 1; the
    scheduler's messages name the attempt they start. A message for an attempt the
    row has already moved past is a stale duplicate (a redelivery, a second
    submission of one id, a dispatch repeated after a crash) and is skipped — except
    when the row's ``processing`` attempt was started by this message (that attempt,
    or a run of it again: the row's ``dispatch``): its worker died mid-task and the
    message is redelivered, so it runs again (as the next attempt). Unless its worker
    (not ``worker``, the one deciding) holds a lease on it: then the attempt still
    runs there, and the decision is to wait.
    """
    intended = request.attempt or 1
    if finished is not None and finished[1] >= intended:
        return Decision(SKIP, why=f"already {finished[0]}")
    attempts = row.attempts if row is not None else 0
    if row is not None:
        if row.status in TERMINAL:
            return Decision(SKIP, why=f"already {row.status}")
        if row.cancel_requested:
            return Decision(CANCEL_NOW, attempt=attempts, why="cancelled while its attempt ran")
        if row.status == PROCESSING:
            if intended < attempts and row.dispatch != intended:
                return Decision(SKIP, why=f"stale message for attempt {intended}; row is at {attempts}")
            if row.lease_until is not None and row.lease_until > now and row.worker != worker:
                return Decision(WAIT, attempt=attempts,
                                why=f"attempt {attempts} still runs on {row.worker} (lease for "
                                    f"{row.lease_until - now:.1f} s more)")
        elif intended <= attempts:
            return Decision(SKIP, why=f"stale message for attempt {intended}; row is {row.status} after {attempts}")
        elif request.attempt is None and row.status in (SCHEDULED, RETRYING) and row.next_run_at is not None \
                and row.next_run_at > now:
            return Decision(SKIP, why="waiting for its time; the scheduler will start it")
    if request.attempt is None and request.eta is not None and request.eta > now:
        return Decision(DEFER, why="eta in the future")
    return Decision(RUN, attempt=max(attempts + 1, intended))


# -- how an attempt ends ------------------------------------------------------------
class AttemptEnd(NamedTuple):
    """How an attempt ends (:func:`end_of_attempt`)."""

    #: ``success``, ``retrying``, ``failed`` or ``cancelled``.
    status: str
    #: The task's retries in all (a failure's; 0 otherwise).
    max_retries: int = 0
    #: Seconds before the next attempt (``retrying`` only).
    delay: float = 0.0


def max_retries_of(taskdef: TaskDef, options: Mapping[str, Any], default: int) -> int:
    """The retries a task may use: its submission's ``max_retries`` option, else the
    task's own (``@task(max_retries=…)``), else ``default``."""
    max_retries = options.get("max_retries")
    if max_retries is None:
        max_retries = taskdef.max_retries if taskdef.max_retries is not None else default
    return int(max_retries)


def end_of_attempt(outcome: Optional[Outcome], taskdef: TaskDef, options: Mapping[str, Any], *, retries_used: int,
                   settings: Settings, rng: Optional[random.Random] = None) -> AttemptEnd:
    """How an attempt that came to ``outcome`` (``None``: it was cancelled) ends.

    A failure is retried when its error is retryable, the task has retries left
    (``retries_used`` below :func:`max_retries_of`), and the task asked for it
    (:class:`~yadtq_app.errors.Retry`) or retries on the error's type; after the
    outcome's own ``retry_delay``, else after :func:`backoff_delay`.
    """
    if outcome is None:
        return AttemptEnd(CANCELLED)
    if outcome.ok:
        return AttemptEnd(SUCCESS)
    max_retries = max_retries_of(taskdef, options, settings.default_max_retries)
    if not (outcome.retryable and retries_used < max_retries
            and (outcome.retry or taskdef.retries_on(outcome.error_types))):
        return AttemptEnd(FAILED, max_retries)
    delay = outcome.retry_delay
    if delay is None:
        delay = backoff_delay(retries_used + 1, base=_or(taskdef.retry_backoff, settings.retry_backoff),
                              cap=_or(taskdef.retry_backoff_max, settings.retry_backoff_max),
                              jitter=settings.retry_jitter, rng=rng)
    return AttemptEnd(RETRYING, max_retries, delay)


def _or(value: Optional[float], default: float) -> float:
    return default if value is None else value


def backoff_delay(retry: int, *, base: float, cap: float, jitter: float, rng: Optional[random.Random] = None) -> float:
    """Seconds before retry number ``retry`` (1 = the first retry).

    ``base * 2**(retry-1)``, capped at ``cap``, plus a random extra of up to ``jitter``
    times that (so retries of many tasks failing together spread out, and no retry
    comes sooner than the configured backoff), the total again capped at ``cap``.
    """
    if retry < 1:
        raise ValueError("retry counts from 1")
    delay = min(cap, base * (2.0 ** min(retry - 1, 62)))
    extra = (rng or random).uniform(0.0, delay * jitter) if jitter > 0 else 0.0
    return min(cap, delay + extra)
