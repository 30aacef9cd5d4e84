"""The JSON Schemas of the HTTP API's bodies: defined once, published by
:mod:`yadtq_app.openapi` as the contract.

:data:`SCHEMAS` maps a name to a JSON Schema (draft 2020-12, which OpenAPI 3.1
schemas are); schemas refer to each other as ``#/components/schemas/<name>``, as in
the OpenAPI document. :func:`problem` validates a value against one of them (``POST
/tasks/status`` does; a submission is checked by the wire format alone, which
``tests/unit/test_schema_agreement.py`` holds to ``TaskSubmission``).

What JSON Schema cannot say is checked by the code that builds the task
(:func:`yadtq_app.wire.task_request_from_json`: lone surrogates in ids, an
``eta`` at most a year ahead, nesting depth, the task being registered) and is
documented as a 400 in the schema's descriptions. Constraints both check are held
in step by ``tests/unit/test_api_schema.py`` and ``tests/unit/test_schema_agreement.py``.
"""

from __future__ import annotations

from typing import Any, Optional

from jsonschema import Draft202012Validator

from .ids import MAX_ID_LENGTH
from .records import STATUSES
from .wire import MAX_DELAY

__all__ = ["SCHEMAS", "MAX_BULK", "MAX_BATCH_IDS", "MAX_WAIT", "MAX_RETRIES", "MAX_TIMEOUT", "MAX_DASHBOARD_TASKS",
           "ref", "problem"]

#: The most tasks one bulk ``POST /tasks`` may carry.
MAX_BULK = 1000
#: The most ids one ``POST /tasks/status`` may ask about.
MAX_BATCH_IDS = 1000
#: The longest ``GET /tasks/{id}?wait=`` may hold a request (s).
MAX_WAIT = 60.0
#: The highest ``max_retries`` a submission may ask for.
MAX_RETRIES = 1000
#: The longest ``timeout`` a submission may ask for (s): a week.
MAX_TIMEOUT = 7 * 86400
#: The most tasks one dashboard answer lists (``?limit=``).
MAX_DASHBOARD_TASKS = 200


def ref(name: str) -> dict[str, str]:
    """A reference to ``SCHEMAS[name]``, as written in the OpenAPI document."""
    return {"$ref": f"#/components/schemas/{name}"}


#: A task id (or ordering key): 1 to MAX_ID_LENGTH characters, no control characters.
_ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH,
       "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
       "description": f"1 to {MAX_ID_LENGTH} characters, no control characters nor lone surrogates"}
#: The same or null (length and pattern apply to strings only).
_ID_OR_NULL = {**_ID, "type": ["string", "null"]}
_NUMBER_OR_NULL = {"type": ["number", "null"]}
_STRING_OR_NULL = {"type": ["string", "null"]}
_INTEGER = {"type": "integer", "minimum": 0}

SCHEMAS: dict[str, dict[str, Any]] = {
    "TaskId": _ID,
    "TaskSubmission": {
        "type": "object",
        "description": "One task to run. `null` for an optional field is the same as leaving it out. Also a 400: "
                       "a task no alive worker registers (`unknown-task`), arguments that do not fit its "
                       "signature (`bad-arguments`), arrays/objects nested deeper than `YADTQ_MAX_NESTING`, "
                       "an `eta` more than a year ahead.",
        "required": ["task"],
        "additionalProperties": False,
        "properties": {
            "task-id": {**_ID_OR_NULL, "description": "the task's id (a random one if left out); "
                        "an id that exists answers that task (200, `duplicate`)"},
            "task_id": {**_ID_OR_NULL, "description": "the same as `task-id` (which wins)"},
            "task": {"type": "string", "minLength": 1, "description": "the name of a registered task"},
            "args": {"type": ["array", "null"], "description": "positional arguments"},
            "kwargs": {"type": ["object", "null"], "description": "keyword arguments"},
            "submitted_at": {"description": "ignored: the server's clock is the submission time"},
            "max_retries": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_RETRIES},
            "timeout": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT,
                        "description": "seconds an attempt may run"},
            "countdown": {"type": ["number", "null"], "minimum": 0, "maximum": MAX_DELAY,
                          "description": "start no earlier than this many seconds from now"},
            "eta": {"type": ["number", "string", "null"],
                    "description": "start no earlier than this time: Unix seconds or ISO 8601 (no zone: UTC), "
                                   "at most a year ahead"},
            "ordering_key": {**_ID_OR_NULL,
                             "description": "tasks with the same key run one at a time, in order"},
        },
        # Checked only when there is a countdown (a "not" over the whole object would
        # double the cost of validating every submission).
        "dependentSchemas": {"countdown": {
            "anyOf": [{"properties": {"countdown": {"type": "null"}}}, {"properties": {"eta": {"type": "null"}}}],
            "x-error": "give 'countdown' or 'eta', not both"}},
    },
    "BulkSubmission": {"type": "array", "minItems": 1, "maxItems": MAX_BULK, "items": ref("TaskSubmission"),
                       "description": f"1 to {MAX_BULK} tasks, each checked (and refused) on its own"},
    "Accepted": {"type": "object", "required": ["task-id", "status"],
                 "properties": {"task-id": {"type": "string"}, "status": {"enum": ["queued", "scheduled"]}}},
    "Duplicate": {"type": "object", "required": ["task-id", "status", "duplicate"],
                  "description": "the id was taken: the existing task, nothing sent",
                  "properties": {"task-id": {"type": "string"}, "status": _STRING_OR_NULL,
                                 "duplicate": {"const": True}}},
    "BulkItem": {
        "type": "object",
        "description": "one submission's outcome: accepted, duplicate, or refused (`error`, `reason`, `code`)",
        "properties": {"task-id": {"type": "string"}, "status": _STRING_OR_NULL, "duplicate": {"type": "boolean"},
                       "error": {"type": "string"}, "reason": {"type": "string"}, "code": {"type": "integer"}},
        "anyOf": [{"required": ["task-id", "status"]}, {"required": ["error", "reason", "code"]}],
    },
    "BulkAnswer": {"type": "object", "required": ["tasks"],
                   "properties": {"tasks": {"type": "array", "items": ref("BulkItem")}}},
    "Error": {
        "type": "object",
        "required": ["error"],
        "description": "`reason` names what is wrong; some errors carry more fields",
        "properties": {"error": {"type": "string"}, "reason": {"type": "string"},
                       "task-id": {"type": "string"}, "task_status": {"type": "string"},
                       "workers_without": {"type": "array", "items": {"type": "string"}},
                       "tasks": {"type": "array", "items": ref("BulkItem")},
                       "status": {"type": "string"}},
    },
    "TaskRow": {
        "type": "object",
        "required": ["task-id", "task", "args", "kwargs", "status", "result", "error", "attempts", "retries",
                     "max_retries", "timeout", "eta", "ordering_key", "next_run_at", "progress",
                     "cancel_requested", "worker", "submitted_at", "started_at", "finished_at", "history"],
        "properties": {
            "task-id": {"type": "string"}, "task": {"type": "string"}, "args": {"type": "array"},
            "kwargs": {"type": "object"}, "status": {"enum": list(STATUSES)}, "result": {},
            "error": {"type": ["object", "null"]}, "attempts": _INTEGER, "retries": _INTEGER,
            "max_retries": {"type": ["integer", "null"]}, "timeout": _NUMBER_OR_NULL, "eta": _NUMBER_OR_NULL,
            "ordering_key": _STRING_OR_NULL, "next_run_at": _NUMBER_OR_NULL,
            "progress": {"type": ["object", "null"]}, "cancel_requested": {"type": "boolean"},
            "worker": _STRING_OR_NULL, "submitted_at": _NUMBER_OR_NULL, "started_at": _NUMBER_OR_NULL,
            "finished_at": _NUMBER_OR_NULL, "history": {"type": "array", "items": {"type": "object"}},
        },
    },
    "StatusRequest": {
        "type": "object", "required": ["ids"],
        "properties": {"ids": {"type": "array", "maxItems": MAX_BATCH_IDS, "items": ref("TaskId")}},
    },
    "StatusAnswer": {
        "type": "object", "required": ["tasks", "unavailable"],
        "properties": {
            "tasks": {"type": "object", "additionalProperties": {"anyOf": [ref("TaskRow"), {"type": "null"}]},
                      "description": "each id asked: its row, or null if no such task"},
            "unavailable": {"type": "array", "items": {"type": "string"},
                            "description": "ids that cannot be answered now (rebalancing): ask again"},
        },
    },
    "ChangeRequested": {"type": "object", "required": ["task-id", "status", "requested"],
                        "properties": {"task-id": {"type": "string"}, "status": {"enum": list(STATUSES)},
                                       "requested": {"enum": ["cancel", "retry"]}}},
    "Worker": {
        "type": "object",
        "required": ["id", "host", "pid", "url", "alive", "last_heartbeat", "started_at", "tasks_done",
                     "tasks_failed", "in_progress", "partitions", "invalid_messages", "tasks", "tasks_digest",
                     "tasks_differ"],
        "properties": {
            "id": {"type": "string"}, "host": {"type": "string"}, "pid": {"type": "integer"},
            "url": {"type": "string"}, "alive": {"type": "boolean"}, "last_heartbeat": {"type": "number"},
            "started_at": {"type": "number"}, "tasks_done": _INTEGER, "tasks_failed": _INTEGER,
            "in_progress": _INTEGER, "partitions": {"type": "array", "items": {"type": "integer"}},
            "invalid_messages": {"type": "object", "additionalProperties": {"type": "integer"}},
            "tasks": {"type": "array", "items": {"type": "string"}}, "tasks_digest": {"type": "string"},
            "tasks_differ": {"type": "boolean"},
        },
    },
    "Workers": {"type": "object", "required": ["workers", "alive_timeout"],
                "properties": {"workers": {"type": "array", "items": ref("Worker")},
                               "alive_timeout": {"type": "number"}}},
    "DeadLetter": {
        "type": "object",
        "required": ["id", "task-id", "task", "reason", "error", "topic", "partition", "offset", "at", "raw",
                     "raw_size", "raw_sha256", "raw_truncated", "key", "worker", "history"],
        "properties": {
            "id": {"type": "string"}, "task-id": _STRING_OR_NULL, "task": _STRING_OR_NULL,
            "reason": {"type": "string"}, "error": {"type": "string"}, "topic": {"type": "string"},
            "partition": {"type": "integer"}, "offset": {"type": "integer"}, "at": {"type": "number"},
            "raw": {"type": ["string", "null"], "description": "the record's first bytes, base64"},
            "raw_size": {"type": ["integer", "null"]}, "raw_sha256": _STRING_OR_NULL,
            "raw_truncated": {"type": "boolean"}, "key": _STRING_OR_NULL, "worker": _STRING_OR_NULL,
            "history": {"type": "array", "items": {"type": "object"}},
        },
    },
    "DeadLetters": {"type": "object", "required": ["dead_letters"],
                    "properties": {"dead_letters": {"type": "array", "items": ref("DeadLetter")}}},
    "TaskDefinition": {
        "type": "object", "required": ["name", "async", "process", "timeout", "max_retries", "retry_on", "doc"],
        "properties": {"name": {"type": "string"}, "async": {"type": "boolean"}, "process": {"type": "boolean"},
                       "timeout": _NUMBER_OR_NULL, "max_retries": {"type": ["integer", "null"]},
                       "retry_on": {"type": ["array", "null"], "items": {"type": "string"}},
                       "doc": {"type": "string"}},
    },
    "Registry": {
        "type": "object", "required": ["worker", "url", "task_modules", "tasks_digest", "tasks"],
        "properties": {"worker": {"type": "string"}, "url": {"type": "string"},
                       "task_modules": {"type": "array", "items": {"type": "string"}},
                       "tasks_digest": {"type": "string"}, "tasks": {"type": "array", "items": ref("TaskDefinition")}},
    },
    "Health": {
        "type": "object",
        "required": ["status", "worker", "rebalancing", "partitions", "fetch", "in_touch", "heartbeat_age"],
        "properties": {"status": {"const": "ok"}, "worker": {"type": "string"}, "rebalancing": {"type": "boolean"},
                       "partitions": {"type": "array", "items": {"type": "integer"}},
                       "fetch": {"type": "object"}, "in_touch": {"type": "boolean"},
                       "heartbeat_age": _NUMBER_OR_NULL},
    },
    "DashboardLocal": {"type": "object", "required": ["worker", "tasks"],
                       "properties": {"worker": {"type": "string"},
                                      "tasks": {"type": "array", "items": ref("TaskRow")}}},
    "DashboardState": {
        "type": "object",
        "required": ["workers", "tasks", "lag", "unanswered", "dead_letters", "dead_letters_known"],
        "properties": {
            "workers": {"type": "array", "items": ref("Worker")},
            "tasks": {"type": "array", "items": ref("TaskRow")},
            "lag": {"type": "object", "description": "task partition → messages not yet consumed"},
            "unanswered": {"type": "array", "items": {"type": "string"}},
            "dead_letters": {"type": "array", "items": ref("DeadLetter")},
            "dead_letters_known": {"type": "boolean"},
        },
    },
}

_ROOT = {"$schema": "https://json-schema.org/draft/2020-12/schema", "components": {"schemas": SCHEMAS}}
_VALIDATORS: dict[str, Draft202012Validator] = {}


def _validator(name: str) -> Draft202012Validator:
    if name not in _VALIDATORS:
        _VALIDATORS[name] = Draft202012Validator({**_ROOT, **ref(name)})
    return _VALIDATORS[name]


def problem(name: str, value: Any) -> Optional[tuple[str, str]]:
    """Why ``value`` does not match ``SCHEMAS[name]``: ``(message, reason)`` for a 400,
    with the reasons of :func:`yadtq_app.wire.task_request_from_json`
    (``not-object``, ``unknown-field``, else ``bad-field``); ``None`` if it matches.
    Raises KeyError for an unknown name."""
    error = next(iter(_validator(name).iter_errors(value)), None)
    if error is None:
        return None
    where = "".join(f"[{p!r}]" for p in error.absolute_path) or "body"
    if isinstance(error.schema, dict) and "x-error" in error.schema:
        return error.schema["x-error"], "bad-field"
    reason = _REASONS.get((error.validator, not error.absolute_path), "bad-field")
    return f"{where}: {error.message}", reason


#: (failing keyword, at the top of the body) → reason.
_REASONS = {("type", True): "not-object", ("additionalProperties", True): "unknown-field"}
