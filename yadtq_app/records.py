"""Typed messages that cross Kafka or HTTP, and the one schema of a task message.

The task topic carries the *wire format*, a plain UTF-8 JSON object any Kafka client
can write (no Faust envelope)::

    {"task-id": "12345abc", "task": "multiply", "args": [4, 5], "kwargs": {}}

keyed by the task id as UTF-8 bytes. Optional per-submission fields:
``max_retries`` (int ≥ 0), ``timeout`` (seconds > 0), and either ``countdown``
(seconds from submission) or ``eta`` (ISO 8601 time, or Unix seconds) — the task
starts no earlier. ``attempt`` is written only by yadtq's scheduler, on the message
that starts a retry or a scheduled run. :func:`parse_task_message` is the single place
that turns bytes into a :class:`TaskRequest`; the HTTP endpoint, the Python client,
the Faust-producer path and the task agent all go through it or through
:meth:`TaskRequest.to_wire`.

Status travels as :class:`TaskEvent` on the internal events topic and is folded into
:class:`TaskState` rows (see :mod:`yadtq_app.state`). Workers announce themselves
with :class:`Heartbeat`.
"""

import base64
import datetime
import hashlib
import json
import math
import time
import uuid
from typing import Any, Mapping, Optional

import faust
from aiokafka.partitioner import murmur2

from .errors import InvalidTask
from .ids import MAX_ID_LENGTH, id_problem

__all__ = [
    "TaskRequest",
    "TaskEvent",
    "TaskState",
    "Heartbeat",
    "DeadLetter",
    "ScheduledRun",
    "parse_task_message",
    "task_request_from_json",
    "new_task_id",
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
    "parse_time",
    "partition_of",
    "is_utf8",
    "raw_sample",
    "RAW_SAMPLE_BYTES",
    "parse_json",
    "MAX_ID_LENGTH",
    "MAX_DELAY",
    "DEFAULT_MAX_NESTING",
    "WIRE_FIELDS",
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

#: The longest a task may wait to start: a ``countdown`` or how far ahead an ``eta`` is (s).
MAX_DELAY = 366 * 86400
#: ``YADTQ_MAX_NESTING``'s default: levels of arrays/objects in a message, itself included.
DEFAULT_MAX_NESTING = 32
#: Every field a task message may have; any other is refused (``unknown-field``), so a
#: typo (``"eta "``, ``"priority"``) is not silently dropped.
WIRE_FIELDS = frozenset({"task-id", "task_id", "task", "args", "kwargs", "submitted_at", "max_retries", "timeout",
                         "countdown", "eta", "ordering_key", "attempt", "sequenced"})


def new_task_id() -> str:
    """A fresh random task id."""
    return uuid.uuid4().hex


class TaskRequest(faust.Record, namespace="yadtq.TaskRequest", serializer="json"):
    """One request to run a registered task."""

    id: str
    task: str
    # Named task_* because Faust's generated __init__ reserves ``kwargs``.
    task_args: list = []  # noqa: RUF012 - faust copies defaults per instance
    task_kwargs: dict = {}  # noqa: RUF012
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

    def to_wire(self) -> dict[str, Any]:
        """The wire format (see module docs): what goes on the task topic."""
        out: dict[str, Any] = {
            "task-id": self.id,
            "task": self.task,
            "args": list(self.task_args),
            "kwargs": dict(self.task_kwargs),
        }
        for name in ("submitted_at", "max_retries", "timeout", "eta", "ordering_key", "attempt", "sequenced"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @property
    def options(self) -> dict[str, Any]:
        """The overrides that were set, as kept in the status row."""
        return {name: getattr(self, name) for name in ("max_retries", "timeout", "eta", "ordering_key")
                if getattr(self, name) is not None}

    def encode(self) -> bytes:
        """UTF-8 JSON bytes of :meth:`to_wire`."""
        return json.dumps(self.to_wire(), separators=(",", ":")).encode()

    @property
    def key(self) -> bytes:
        """The Kafka key: the task id as UTF-8 bytes."""
        return self.id.encode()


def task_request_from_json(obj: Any, *, default_id: Optional[str] = None) -> TaskRequest:
    """Validate a decoded JSON value and build a :class:`TaskRequest`.

    Raises :class:`InvalidTask` with a ``reason`` naming what is wrong. The task name
    is only checked for shape here; whether it is registered is the caller's check.
    """
    if not isinstance(obj, dict):
        raise InvalidTask(f"a task must be a JSON object, not {type(obj).__name__}", reason="not-object")
    task_id = obj.get("task-id", obj.get("task_id", default_id))
    if task_id is None:
        task_id = new_task_id()
    problem = id_problem(task_id)
    if problem is not None:
        raise InvalidTask(problem, reason="bad-field")
    unknown = sorted(set(obj) - WIRE_FIELDS)
    if unknown:
        raise InvalidTask(f"unknown field {unknown[0]!r} (a task message has only {', '.join(sorted(WIRE_FIELDS))})",
                          reason="unknown-field", task_id=task_id)
    name = obj.get("task")
    if not isinstance(name, str) or not name:
        raise InvalidTask("'task' must be a non-empty string naming a registered task",
                          reason="bad-field", task_id=task_id)
    args = obj.get("args", [])
    if args is None:
        args = []
    if not isinstance(args, list):
        raise InvalidTask("'args' must be a JSON array", reason="bad-field", task_id=task_id)
    kwargs = obj.get("kwargs", {})
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise InvalidTask("'kwargs' must be a JSON object", reason="bad-field", task_id=task_id)
    submitted_at = obj.get("submitted_at")
    if submitted_at is not None and not _is_number(submitted_at):
        raise InvalidTask("'submitted_at' must be a number (Unix time)", reason="bad-field", task_id=task_id)
    max_retries = obj.get("max_retries")
    if max_retries is not None and (not isinstance(max_retries, int) or isinstance(max_retries, bool)
                                    or not 0 <= max_retries <= 1000):
        raise InvalidTask("'max_retries' must be an integer from 0 to 1000", reason="bad-field", task_id=task_id)
    timeout = obj.get("timeout")
    if timeout is not None and (not _is_number(timeout) or not 0 < timeout <= 7 * 86400):
        raise InvalidTask("'timeout' must be a number of seconds, above 0 and at most a week",
                          reason="bad-field", task_id=task_id)
    attempt = obj.get("attempt")
    if attempt is not None and (not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1):
        raise InvalidTask("'attempt' must be a positive integer", reason="bad-field", task_id=task_id)
    ordering_key = obj.get("ordering_key")
    if ordering_key is not None and (problem := id_problem(ordering_key, name="ordering_key")) is not None:
        raise InvalidTask(problem, reason="bad-field", task_id=task_id)
    sequenced = obj.get("sequenced")
    if sequenced is not None and not isinstance(sequenced, bool):
        raise InvalidTask("'sequenced' must be true or false", reason="bad-field", task_id=task_id)
    eta = _eta(obj, task_id, submitted_at)
    return TaskRequest(id=task_id, task=name, task_args=args, task_kwargs=kwargs,
                       submitted_at=float(submitted_at) if submitted_at is not None else None,
                       max_retries=max_retries, timeout=float(timeout) if timeout is not None else None,
                       eta=eta, ordering_key=ordering_key, attempt=attempt, sequenced=sequenced or None)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _eta(obj: Mapping[str, Any], task_id: str, submitted_at: Optional[float]) -> Optional[float]:
    countdown, eta = obj.get("countdown"), obj.get("eta")
    if countdown is not None and eta is not None:
        raise InvalidTask("give 'countdown' or 'eta', not both", reason="bad-field", task_id=task_id)
    if countdown is not None:
        if not _is_number(countdown) or not 0 <= countdown <= MAX_DELAY:
            raise InvalidTask("'countdown' must be a number of seconds from 0 to a year",
                              reason="bad-field", task_id=task_id)
        return (submitted_at if submitted_at is not None else time.time()) + float(countdown)
    if eta is None:
        return None
    try:
        when = parse_time(eta)
    except ValueError as exc:
        raise InvalidTask(f"'eta' {exc}", reason="bad-field", task_id=task_id) from None
    if when > time.time() + MAX_DELAY:
        raise InvalidTask(f"'eta' must be at most a year from now, not {eta!r}", reason="bad-field", task_id=task_id)
    return when


def parse_time(value: Any) -> float:
    """Unix seconds from a number or an ISO 8601 string (no zone means UTC)."""
    if _is_number(value):
        return float(value)
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 time or a number of Unix seconds")
    try:
        when = datetime.datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"is not an ISO 8601 time: {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def parse_json(raw: bytes, *, max_depth: int = DEFAULT_MAX_NESTING, what: str = "message") -> Any:
    """Decode strict JSON: UTF-8, no ``NaN``/``Infinity`` (nor numbers that overflow
    to them), arrays and objects nested at most ``max_depth`` levels (the outermost
    value is level 1). :class:`InvalidTask` with the reason ``not-utf8``,
    ``not-json``, ``bad-number`` or ``too-deep`` otherwise."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidTask(f"{what} is not UTF-8: {exc}", reason="not-utf8") from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise InvalidTask(f"{what} nests arrays/objects more than {max_depth} levels deep",
                          reason="too-deep") from None
    except ValueError as exc:
        raise InvalidTask(f"{what} is not JSON: {exc}", reason="not-json") from None
    if _depth_exceeds(value, max_depth):
        raise InvalidTask(f"{what} nests arrays/objects more than {max_depth} levels deep", reason="too-deep")
    return value


def _refuse_constant(name: str) -> Any:
    raise InvalidTask(f"{name} is not a JSON number (JSON has no NaN or Infinity)", reason="bad-number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidTask(f"{text} is out of the range of a double (it would be Infinity)", reason="bad-number")
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists/dicts more than ``limit`` deep (iterative: a
    recursive walk is what the limit protects against)."""
    if not isinstance(value, (list, dict)):
        return False
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, (list, dict)):
                stack.append((child, depth + 1))
    return False


def _readable_id(raw: bytes) -> Optional[str]:
    """The task id of a message refused for its numbers or depth, if plain JSON
    decoding can still read one (so that the task's status can say why)."""
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    task_id = obj.get("task-id", obj.get("task_id")) if isinstance(obj, dict) else None
    return task_id if id_problem(task_id) is None else None


def parse_task_message(raw: Optional[bytes], *, max_bytes: int, max_depth: int = DEFAULT_MAX_NESTING,
                       default_id: Optional[str] = None) -> TaskRequest:
    """Decode one task-topic message value into a :class:`TaskRequest`.

    Every way a message can be wrong raises :class:`InvalidTask` with a reason:
    ``empty``, ``too-large``, ``not-utf8``, ``not-json``, ``bad-number``, ``too-deep``
    (see :func:`parse_json`), ``not-object``, ``unknown-field``, ``bad-field``.
    """
    if raw is None or len(raw) == 0:
        raise InvalidTask("empty message", reason="empty")
    if len(raw) > max_bytes:
        raise InvalidTask(f"message of {len(raw)} bytes exceeds the limit of {max_bytes}", reason="too-large")
    try:
        obj = parse_json(raw, max_depth=max_depth)
    except InvalidTask as exc:
        if exc.reason in ("bad-number", "too-deep"):
            exc.task_id = _readable_id(raw)
        raise
    request = task_request_from_json(obj, default_id=default_id)
    # Re-encoded (as status rows and re-sent records are), non-ASCII text grows up to
    # threefold (``\ud83d\ude00`` for a 4-byte character): the limit holds for that too.
    if not raw.isascii() and len(request.encode()) > max_bytes:
        raise InvalidTask(f"message exceeds the limit of {max_bytes} bytes once encoded as yadtq stores it",
                          reason="too-large", task_id=request.id)
    return request


def partition_of(key: bytes, partitions: int) -> int:
    """The partition a record keyed ``key`` belongs in: the Java client's default
    partitioner (murmur2), which yadtq's producer and Faust's router use too."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def is_utf8(text: str) -> bool:
    """Whether ``text`` can be sent as UTF-8 (no lone surrogates, which JSON allows)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: How much of a bad record a dead letter keeps (bytes, before base64).
RAW_SAMPLE_BYTES = 4096


def raw_sample(raw: Optional[bytes]) -> dict[str, Any]:
    """A dead letter's account of a raw record: its first :data:`RAW_SAMPLE_BYTES`
    (base64), its size and its SHA-256, so any record is accounted for in a letter
    that stays small."""
    if raw is None:
        return {"raw": None, "raw_size": None, "raw_sha256": None, "raw_truncated": False}
    return {"raw": base64.b64encode(raw[:RAW_SAMPLE_BYTES]).decode(), "raw_size": len(raw),
            "raw_sha256": hashlib.sha256(raw).hexdigest(), "raw_truncated": len(raw) > RAW_SAMPLE_BYTES}


class TaskEvent(faust.Record, namespace="yadtq.TaskEvent", serializer="json"):
    """Something that happened to a task; the status agent folds these into rows."""

    id: str
    kind: str  # one of EVENT_KINDS
    task: str
    task_args: list = []  # noqa: RUF012
    task_kwargs: dict = {}  # noqa: RUF012
    attempt: int = 0
    worker: Optional[str] = None
    at: float = 0.0
    submitted_at: Optional[float] = None
    result: Any = None
    error: Optional[dict] = None
    #: The submission's overrides (TaskRequest.options).
    options: dict = {}  # noqa: RUF012
    #: ``scheduled`` / ``retrying`` / ``queued`` with an eta: when the next attempt may start.
    next_run_at: Optional[float] = None
    #: ``progress``: ``{"fraction": 0.4, "message": "parsing"}``.
    progress: Optional[dict] = None
    #: When the attempt that this outcome ends started.
    started_at: Optional[float] = None
    #: ``processing`` from a worker that keeps running the attempt while its partition
    #: may move (a rebalance): no other worker runs the task before this time, unless
    #: the attempt ends first (see ``agents.tasks`` on leases).
    lease_until: Optional[float] = None


class TaskState(faust.Record, namespace="yadtq.TaskState", serializer="json"):
    """The status row of one task, as kept in the status table."""

    id: str
    task: str
    status: str
    task_args: list = []  # noqa: RUF012
    task_kwargs: dict = {}  # noqa: RUF012
    result: Any = None
    error: Optional[dict] = None
    attempts: int = 0
    worker: Optional[str] = None
    submitted_at: Optional[float] = None
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    #: The submission's overrides: ``max_retries``, ``timeout``, ``eta``, ``ordering_key``.
    options: dict = {}  # noqa: RUF012
    #: When the next attempt may start (``scheduled``, ``retrying``, or requeued).
    next_run_at: Optional[float] = None
    #: The running attempt's last reported progress.
    progress: Optional[dict] = None
    cancel_requested: bool = False
    #: Retries used since the task was (re)submitted.
    retries: int = 0
    #: How many times the task was resubmitted by ``POST /tasks/{id}/retry``.
    generation: int = 0
    #: One entry per finished attempt: attempt, worker, status, started/finished, error.
    history: list = []  # noqa: RUF012
    #: While ``processing``: the running attempt's worker holds it until then, even if
    #: another worker now owns the task's partition (see ``agents.tasks`` on leases).
    lease_until: Optional[float] = None

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
    partitions: list = []  # noqa: RUF012
    #: Invalid task messages seen by this worker, per reason (``not-json``, ...).
    invalid_messages: dict = {}  # noqa: RUF012
    #: The names of the tasks this worker registers, and their digest
    #: (:func:`yadtq_app.registry.names_digest`).
    tasks: list = []  # noqa: RUF012
    tasks_digest: str = ""

    def to_json(self, *, now: Optional[float] = None, timeout: float = 3.0) -> dict[str, Any]:
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
    history: list = []  # noqa: RUF012

    def to_json(self) -> dict[str, Any]:
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
