"""The task topic's wire format, and the one place that checks it.

A task message is a plain UTF-8 JSON object any Kafka client can write (no Faust
envelope)::

    {"task-id": "12345abc", "task": "multiply", "args": [4, 5], "kwargs": {}}

keyed by the task id as UTF-8 bytes. Optional per-submission fields:
``max_retries`` (int ≥ 0), ``timeout`` (seconds > 0), and either ``countdown``
(seconds from submission) or ``eta`` (ISO 8601 time, or Unix seconds) — the task
starts no earlier. ``attempt`` is written only by yadtq's scheduler, on the message
that starts a retry or a scheduled run. :func:`parse_task_message` is the single place
that turns bytes into a :class:`~yadtq_app.records.TaskRequest`; the HTTP endpoint, the
Python client, the Faust-producer path and the task agent all go through it (or
:func:`task_request_from_json`) or through :meth:`~yadtq_app.records.TaskRequest.to_wire`.
"""

import datetime
import json
import math
import os
import time
from typing import Any, Mapping, Optional

from .errors import InvalidTask
from .fast_records import build
from .ids import id_problem
from .records import TaskRequest

__all__ = [
    "parse_task_message",
    "task_request_from_json",
    "parse_json",
    "parse_time",
    "new_task_id",
    "MAX_DELAY",
    "DEFAULT_MAX_NESTING",
    "WIRE_FIELDS",
]

#: The longest a task may wait to start: a ``countdown`` or how far ahead an ``eta`` is (s).
MAX_DELAY = 366 * 86400
#: ``YADTQ_MAX_NESTING``'s default: levels of arrays/objects in a message, itself included.
DEFAULT_MAX_NESTING = 32
#: Every field a task message may have; any other is refused (``unknown-field``), so a
#: typo (``"eta "``, ``"priority"``) is not silently dropped.
WIRE_FIELDS = frozenset({"task-id", "task_id", "task", "args", "kwargs", "submitted_at", "max_retries", "timeout",
                         "countdown", "eta", "ordering_key", "attempt", "sequenced"})


def new_task_id() -> str:
    """A fresh random task id: a version 4 UUID's 32 hex digits (``uuid.uuid4().hex``,
    without building a ``UUID``)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    return raw.hex()


def task_request_from_json(obj: Any, *, default_id: Optional[str] = None) -> TaskRequest:
    """Validate a decoded JSON value and build a :class:`TaskRequest`.

    Raises :class:`InvalidTask` with a ``reason`` naming what is wrong. The task name
    is only checked for shape here; whether it is registered is the caller's check.
    """
    if not isinstance(obj, dict):
        raise InvalidTask(f"a task must be a JSON object, not {type(obj).__name__}", reason="not-object")
    given = [obj[name] for name in ("task-id", "task_id") if obj.get(name) is not None]
    task_id = given[0] if given else default_id if default_id is not None else new_task_id()
    for candidate in given or [task_id]:  # both ids given are checked, though ``task-id`` wins
        problem = id_problem(candidate)
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
    options = _options(obj, task_id, submitted_at)
    return build(TaskRequest, {"id": task_id, "task": name, "task_args": args, "task_kwargs": kwargs,
                               "submitted_at": float(submitted_at) if submitted_at is not None else None,
                               "eta": _eta(obj, task_id, submitted_at), **options})


def _options(obj: dict[str, Any], task_id: str, submitted_at: Any) -> dict[str, Any]:
    """The optional fields after ``args``/``kwargs``, checked: :class:`TaskRequest` keywords.

    Raises :class:`InvalidTask` (``bad-field``) naming the first field that is wrong.
    """
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
    return {"max_retries": max_retries, "timeout": float(timeout) if timeout is not None else None,
            "ordering_key": ordering_key, "attempt": attempt, "sequenced": sequenced or None}


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
