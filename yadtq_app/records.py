"""Typed messages that cross Kafka or HTTP: the task statuses and the Faust Records.

A task is submitted as a :class:`TaskRequest` (its wire format and checks are in
:mod:`yadtq_app.wire`). Status travels as :class:`TaskEvent` on the internal events
topic and is folded into :class:`TaskState` rows (see :mod:`yadtq_app.state`); a waiting
task's next start is a :class:`ScheduledRun`. Workers announce themselves with
:class:`Heartbeat`; a message that will never run becomes a :class:`DeadLetter`.

Faust shares a field's default between records (it does not copy it): replace a list
or dict field, never change it in place.
"""

import json
import time
from typing import Any, Mapping, Optional

import faust

from .encoding import compact_json
from .fast_records import build

__all__ = [
    "TaskRequest",
    "TaskEvent",
    "TaskState",
    "Heartbeat",
    "DeadLetter",
    "ScheduledRun",
    "row_json",
    "QUEUED",
    "SCHEDULED",
    "PROCESSING",
    "RETRYING",
    "SUCCESS",
    "FAILED",
    "CANCELLED",
    "STATUSES",
    "TERMINAL",
    "WAITING",
    "PROGRESS",
    "CANCEL",
    "REQUEUE",
    "EXPIRE",
    "EVENT_KINDS",
    "BATCH",
]

# Statuses of a task.
QUEUED = "queued"  # submitted, will run as soon as a worker gets to it
SCHEDULED = "scheduled"  # waiting for its countdown / eta
PROCESSING = "processing"  # an attempt is running
RETRYING = "retrying"  # an attempt failed; the next starts at ``next_run_at``
SUCCESS = "success"
FAILED = "failed"
CANCELLED = "cancelled"
STATUSES = (QUEUED, SCHEDULED, PROCESSING, RETRYING, SUCCESS, FAILED, CANCELLED)
TERMINAL = frozenset({SUCCESS, FAILED, CANCELLED})
#: Not running, not finished: waiting for a worker or for its time.
WAITING = frozenset({QUEUED, SCHEDULED, RETRYING})

# Event kinds beyond the statuses themselves (see yadtq_app.state).
PROGRESS = "progress"  # a running attempt reports how far it got
CANCEL = "cancel"  # someone asked to cancel the task
REQUEUE = "requeue"  # someone asked to run a failed/cancelled task again
EXPIRE = "expire"  # a finished task's row is past the result TTL
EVENT_KINDS = frozenset(STATUSES) | {PROGRESS, CANCEL, REQUEUE, EXPIRE}
#: Not an event of one task: a record carrying several events of one partition
#: (:meth:`TaskEvent.batch`), folded in order as if each came alone.
BATCH = "batch"


#: A task message's optional fields, in wire order.
_WIRE_OPTIONAL = ("submitted_at", "max_retries", "timeout", "eta", "ordering_key", "attempt", "sequenced")
#: The per-submission overrides a status row keeps.
_OPTIONS = ("max_retries", "timeout", "eta", "ordering_key")


class TaskRequest(faust.Record, namespace="yadtq.TaskRequest", serializer="json"):
    """One request to run a registered task."""

    id: str
    task: str
    # Named task_* because Faust's generated __init__ reserves ``kwargs``.
    task_args: list[Any] = []
    task_kwargs: dict[str, Any] = {}
    submitted_at: Optional[float] = None
    #: Per-submission overrides of the task's own settings.
    max_retries: Optional[int] = None
    timeout: Optional[float] = None
    #: Unix time before which the task must not start.
    eta: Optional[float] = None
    #: Tasks with the same ordering key run one at a time, in order (yadtq_app.ordering).
    ordering_key: Optional[str] = None
    #: Set by the scheduler only: the attempt this message starts.
    attempt: Optional[int] = None
    #: Set by the sequencer only: this ordered task's turn has come.
    sequenced: Optional[bool] = None

    # to_wire and options read the fields from __dict__, skipping Faust's field
    # descriptor (a Python call per read): none of this record's fields coerces, so
    # __dict__ holds what the descriptor would return (yadtq_app.fast_records checks it).

    def to_wire(self) -> dict[str, Any]:
        """The wire format (:mod:`yadtq_app.wire`): what goes on the task topic."""
        fields = self.__dict__
        out: dict[str, Any] = {
            "task-id": fields["id"],
            "task": fields["task"],
            "args": list(fields["task_args"]),
            "kwargs": dict(fields["task_kwargs"]),
        }
        for name in _WIRE_OPTIONAL:
            value = fields[name]
            if value is not None:
                out[name] = value
        return out

    @property
    def options(self) -> dict[str, Any]:
        """The overrides that were set, as kept in the status row."""
        fields = self.__dict__
        return {name: fields[name] for name in _OPTIONS if fields[name] is not None}

    def encode(self) -> bytes:
        """UTF-8 JSON bytes of :meth:`to_wire`."""
        return compact_json(self.to_wire())

    @property
    def key(self) -> bytes:
        """The Kafka key: the task id as UTF-8 bytes."""
        return self.id.encode()



class TaskEvent(faust.Record, namespace="yadtq.TaskEvent", serializer="json"):
    """Something that happened to a task; the status agent folds these into rows."""

    id: str
    kind: str  # one of EVENT_KINDS
    task: str
    task_args: list[Any] = []
    task_kwargs: dict[str, Any] = {}
    attempt: int = 0
    worker: Optional[str] = None
    at: float = 0.0
    submitted_at: Optional[float] = None
    result: Any = None
    error: Optional[dict[str, Any]] = None
    #: The submission's overrides (TaskRequest.options).
    options: dict[str, Any] = {}
    #: ``scheduled`` / ``retrying`` / ``queued`` with an eta: when the next attempt may start.
    next_run_at: Optional[float] = None
    #: ``progress``: ``{"fraction": 0.4, "message": "parsing"}``.
    progress: Optional[dict[str, Any]] = None
    #: When the attempt that this outcome ends started.
    started_at: Optional[float] = None
    #: ``processing`` from a worker that keeps running the attempt while its partition
    #: may move (a rebalance): no other worker runs the task before this time, unless
    #: the attempt ends first (see ``agents.leases``).
    lease_until: Optional[float] = None
    #: ``batch``: the events it carries, as :meth:`faust.Record.asdict` gives them.
    events: Optional[list[dict[str, Any]]] = None
    #: ``requeue`` / ``cancel``: the generation of the row it was asked of; read again
    #: (after a crash or a rebalance) once the row has moved on, it does nothing.
    generation: Optional[int] = None
    #: ``processing``: the attempt the message that started it asked for (1: the
    #: submission); a run again after a worker died has a higher number (see ``decide``).
    dispatch: Optional[int] = None

    @classmethod
    def queued(cls, request: TaskRequest, at: float) -> "TaskEvent":
        """The ``queued`` event of ``request``, submitted or found unread at ``at``: its
        row reads ``scheduled`` (with the eta as next start) if the eta is later than ``at``."""
        return build(cls, cls.queued_fields(request, at))

    @staticmethod
    def queued_fields(request: TaskRequest, at: float) -> dict[str, Any]:
        """The fields of :meth:`queued`'s event that are set: what :meth:`batch` carries."""
        fields = {"id": request.id, "kind": QUEUED, "task": request.task, "task_args": request.task_args,
                  "task_kwargs": request.task_kwargs, "at": at, "options": request.options}
        if request.submitted_at is not None:
            fields["submitted_at"] = request.submitted_at
        if request.eta is not None and request.eta > at:
            fields["next_run_at"] = request.eta
        return fields

    @classmethod
    def batch(cls, events: "list[dict[str, Any]]") -> "TaskEvent":
        """One record carrying ``events``, each given by its fields (an event's
        ``asdict()``, or only those set, as :meth:`queued_fields` gives them), all of
        one partition: the record is keyed by the first one's id."""
        return cls(id=events[0]["id"], kind=BATCH, task="", events=events)

    def unpacked(self) -> "list[TaskEvent]":
        """The events this record carries: those of a batch, else itself.

        Raises :class:`TypeError` or :class:`ValueError` for a batch item that is not an event."""
        if self.kind != BATCH:
            return [self]
        events = []
        for item in self.events or ():
            if not isinstance(item, dict):
                raise TypeError(f"a batch item must be an object, not {type(item).__name__}")
            events.append(build(TaskEvent, item))
        return events


class TaskState(faust.Record, namespace="yadtq.TaskState", serializer="json"):
    """The status row of one task, as kept in the status table."""

    id: str
    task: str
    status: str
    task_args: list[Any] = []
    task_kwargs: dict[str, Any] = {}
    result: Any = None
    error: Optional[dict[str, Any]] = None
    attempts: int = 0
    worker: Optional[str] = None
    submitted_at: Optional[float] = None
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    #: The submission's overrides: ``max_retries``, ``timeout``, ``eta``, ``ordering_key``.
    options: dict[str, Any] = {}
    #: When the next attempt may start (``scheduled``, ``retrying``, or requeued).
    next_run_at: Optional[float] = None
    #: The running attempt's last reported progress.
    progress: Optional[dict[str, Any]] = None
    cancel_requested: bool = False
    #: Retries used since the task was (re)submitted.
    retries: int = 0
    #: How many times the task was resubmitted by ``POST /tasks/{id}/retry``.
    generation: int = 0
    #: One entry per finished attempt: attempt, worker, status, started/finished, error.
    history: list[Any] = []
    #: While ``processing``: the running attempt's worker holds it until then, even if
    #: another worker now owns the task's partition (see ``agents.leases``).
    lease_until: Optional[float] = None
    #: While ``processing``: the attempt its task message asked for (TaskEvent.dispatch).
    dispatch: Optional[int] = None

    def to_json(self) -> dict[str, Any]:
        """The HTTP representation (``task-id`` like the wire format)."""
        return row_json(self.asdict())

    @classmethod
    def json_from_stored(cls, raw: bytes) -> dict[str, Any]:
        """:meth:`to_json` of the row stored as ``raw`` (its JSON as the table keeps it),
        without building the record: the batch status read answers a thousand rows a request."""
        return row_json(json.loads(raw))


def row_json(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The HTTP representation of a status row given as its fields (:class:`TaskState`'s
    names; a field missing, as in a row stored before it existed, has its default)."""
    get = fields.get
    options = get("options") or {}
    return {
        "task-id": fields["id"],
        "task": fields["task"],
        "args": get("task_args", []),
        "kwargs": get("task_kwargs", {}),
        "status": fields["status"],
        "result": get("result"),
        "error": get("error"),
        "attempts": get("attempts", 0),
        "retries": get("retries", 0),
        "max_retries": options.get("max_retries"),
        "timeout": options.get("timeout"),
        "eta": options.get("eta"),
        "ordering_key": options.get("ordering_key"),
        "next_run_at": get("next_run_at"),
        "progress": get("progress"),
        "cancel_requested": get("cancel_requested", False),
        "worker": get("worker"),
        "submitted_at": get("submitted_at"),
        "started_at": get("started_at"),
        "finished_at": get("finished_at"),
        "history": get("history", []),
    }


class ScheduledRun(faust.Record, namespace="yadtq.ScheduledRun", serializer="json"):
    """A waiting task's next start: send the message for ``attempt`` at ``due``."""

    due: float
    attempt: int
    generation: int = 0


class Heartbeat(faust.Record, namespace="yadtq.Heartbeat", serializer="json"):
    """A worker's periodic "I am alive", with its counters."""

    worker: str
    host: str
    pid: int
    web_url: str
    at: float
    started_at: float
    tasks_done: int = 0
    tasks_failed: int = 0
    in_progress: int = 0
    partitions: list[Any] = []
    #: Invalid task messages seen by this worker, per reason (``not-json``, ...).
    invalid_messages: dict[str, Any] = {}
    #: The names of the tasks this worker registers, and their digest
    #: (:func:`yadtq_app.registry.names_digest`).
    tasks: list[Any] = []
    tasks_digest: str = ""

    def to_json(self, *, now: Optional[float] = None, timeout: float = 3.0) -> dict[str, Any]:
        """The HTTP representation: alive if its last beat is at most ``timeout`` s old."""
        now = time.time() if now is None else now
        return {
            "id": self.worker,
            "host": self.host,
            "pid": self.pid,
            "url": self.web_url,
            "alive": now - self.at <= timeout,
            "last_heartbeat": self.at,
            "started_at": self.started_at,
            "tasks_done": self.tasks_done,
            "tasks_failed": self.tasks_failed,
            "in_progress": self.in_progress,
            "partitions": self.partitions,
            "invalid_messages": self.invalid_messages,
            "tasks": self.tasks,
            "tasks_digest": self.tasks_digest,
        }


class DeadLetter(faust.Record, namespace="yadtq.DeadLetter", serializer="json"):
    """A task message that will not run, kept with why and where it came from.

    ``id`` is the task id when one could be read, else ``topic-partition-offset``.
    ``raw`` is the start of the message value as it arrived (base64, at most
    :data:`RAW_SAMPLE_BYTES`; ``raw_truncated`` if there was more), with the whole
    value's size and SHA-256.
    """

    id: str
    reason: str
    error: str
    topic: str
    partition: int
    offset: int
    at: float
    task_id: Optional[str] = None
    task: Optional[str] = None
    raw: Optional[str] = None
    raw_size: Optional[int] = None
    raw_sha256: Optional[str] = None
    raw_truncated: bool = False
    key: Optional[str] = None
    worker: Optional[str] = None
    #: For ``retries-exhausted``: every attempt (see TaskState.history).
    history: list[Any] = []

    def to_json(self) -> dict[str, Any]:
        """The HTTP representation (``task-id`` like the wire format)."""
        return {
            "id": self.id,
            "task-id": self.task_id,
            "task": self.task,
            "reason": self.reason,
            "error": self.error,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "at": self.at,
            "raw": self.raw,
            "raw_size": self.raw_size,
            "raw_sha256": self.raw_sha256,
            "raw_truncated": self.raw_truncated,
            "key": self.key,
            "worker": self.worker,
            "history": self.history,
        }
