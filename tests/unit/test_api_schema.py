"""The schemas of yadtq_app.api_schema: in step with the wire format's own checks, and
true of the answers the views build."""

from __future__ import annotations

import time
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from yadtq_app.api_schema import MAX_BULK, SCHEMAS, problem
from yadtq_app.errors import InvalidTask
from yadtq_app.records import DeadLetter, Heartbeat, TaskState
from yadtq_app.registry import TaskRegistry, describe_task
from yadtq_app.settings import Settings
from yadtq_app.wire import task_request_from_json

ACCEPTED = [
    {"task": "echo"},
    {"task": "echo", "args": [1, "a", None], "kwargs": {"x": [1]}},
    {"task": "echo", "args": None, "kwargs": None, "task-id": None, "eta": None, "countdown": None},
    {"task": "echo", "task-id": "a/b?c#d%e f", "ordering_key": "k"},
    {"task": "echo", "task_id": "x" * 200},
    {"task": "echo", "max_retries": 0, "timeout": 0.5},
    {"task": "echo", "max_retries": 1000, "timeout": 7 * 86400},
    {"task": "echo", "countdown": 0},
    {"task": "echo", "countdown": 365 * 86400},
    {"task": "echo", "eta": 1.5},
    {"task": "echo", "eta": "2020-01-01T00:00:00"},
    {"task": "echo", "countdown": 5, "eta": None},
]

REFUSED = [
    [],
    "echo",
    None,
    {},
    {"task": ""},
    {"task": 5},
    {"task": "echo", "priority": 1},
    {"task": "echo", "args": {}},
    {"task": "echo", "args": "x"},
    {"task": "echo", "kwargs": []},
    {"task": "echo", "task-id": ""},
    {"task": "echo", "task-id": 5},
    {"task": "echo", "task-id": "x" * 201},
    {"task": "echo", "task-id": "a\nb"},
    {"task": "echo", "task-id": "a\x85b"},
    {"task": "echo", "ordering_key": ""},
    {"task": "echo", "max_retries": -1},
    {"task": "echo", "max_retries": 1001},
    {"task": "echo", "max_retries": True},
    {"task": "echo", "max_retries": "3"},
    {"task": "echo", "timeout": 0},
    {"task": "echo", "timeout": 7 * 86400 + 1},
    {"task": "echo", "timeout": "5"},
    {"task": "echo", "countdown": -1},
    {"task": "echo", "countdown": 366 * 86400 + 1},
    {"task": "echo", "countdown": 1, "eta": 2},
    {"task": "echo", "eta": True},
    {"task": "echo", "eta": [1]},
]


def wire_refuses(body: Any) -> bool:
    try:
        task_request_from_json(body)
    except InvalidTask:
        return True
    return False


@pytest.mark.parametrize("body", ACCEPTED)
def test_what_the_wire_format_accepts_the_schema_accepts(body: Any) -> None:
    assert not wire_refuses(body)
    assert problem("TaskSubmission", body) is None


@pytest.mark.parametrize("body", REFUSED)
def test_what_the_wire_format_refuses_the_schema_refuses(body: Any) -> None:
    assert wire_refuses(body)
    assert problem("TaskSubmission", body) is not None


@pytest.mark.parametrize("body, reason", [
    ([1], "not-object"),
    ({"task": "echo", "priority": 1}, "unknown-field"),
    ({"task": "echo", "max_retries": -1}, "bad-field"),
    ({"task": "echo", "countdown": 1, "eta": 2}, "bad-field"),
])
def test_a_refusal_has_the_wire_formats_reason(body: Any, reason: str) -> None:
    message, got = problem("TaskSubmission", body) or ("", "")
    assert got == reason and message


def test_bulk_and_batch_limits() -> None:
    assert problem("BulkSubmission", []) is not None
    assert problem("BulkSubmission", [{"task": "a"}] * MAX_BULK) is None
    assert problem("BulkSubmission", [{"task": "a"}] * (MAX_BULK + 1)) is not None
    assert problem("StatusRequest", {"ids": ["a", "b"]}) is None
    assert problem("StatusRequest", {"ids": ["a", ""]}) is not None
    assert problem("StatusRequest", {"ids": "a"}) is not None


def conforms(name: str, value: Any) -> list[str]:
    root = {"components": {"schemas": SCHEMAS}, "$ref": f"#/components/schemas/{name}"}
    return [e.message for e in Draft202012Validator(root).iter_errors(value)]


def test_the_answers_the_views_build_match_their_schemas() -> None:
    state = TaskState(id="a", task="echo", status="failed", task_args=[1], error={"type": "E", "message": "m"},
                      attempts=2, worker="w1", submitted_at=1.0, started_at=2.0, finished_at=3.0,
                      options={"max_retries": 1, "timeout": 2.0}, history=[{"attempt": 1}])
    assert conforms("TaskRow", state.to_json()) == []
    assert conforms("StatusAnswer", {"tasks": {"a": state.to_json(), "b": None}, "unavailable": ["c"]}) == []
    hb = Heartbeat(worker="w1", host="h", pid=1, web_url="http://x", at=time.time(), started_at=0.0,
                   partitions=[0, 3], invalid_messages={"not-json": 2}, tasks=["echo"], tasks_digest="abc")
    assert conforms("Workers", {"workers": [{**hb.to_json(), "tasks_differ": False}], "alive_timeout": 3.0}) == []
    letter = DeadLetter(id="t-0-1", reason="not-json", error="bad", topic="t", partition=0, offset=1, at=1.0)
    assert conforms("DeadLetters", {"dead_letters": [letter.to_json()]}) == []
    registry = TaskRegistry()
    registry.register(lambda: None, name="noop")
    assert conforms("TaskDefinition", describe_task(registry.get("noop"), Settings(worker_id="w"))) == []


def test_an_answer_unlike_its_schema_is_found() -> None:
    """The control case for the test above."""
    row = TaskState(id="a", task="echo", status="success").to_json()
    del row["history"]
    row["status"] = "done"
    assert len(conforms("TaskRow", row)) == 2
