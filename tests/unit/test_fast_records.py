"""Records built without their descriptors (:func:`yadtq_app.fast_records.build`) are the
records Faust's ``__init__`` builds, and refuse what it refuses."""

from __future__ import annotations

from typing import Any, Optional

import faust
import pytest

from yadtq_app.fast_records import build
from yadtq_app.records import QUEUED, DeadLetter, Heartbeat, ScheduledRun, TaskEvent, TaskRequest, TaskState

SAMPLES: list[tuple[type[faust.Record], dict[str, Any]]] = [
    (TaskEvent, {"id": "t1", "kind": QUEUED, "task": "add", "task_args": [1, 2], "at": 5.0, "options": {"timeout": 3},
                 "next_run_at": None}),
    (TaskEvent, {"id": "t2", "kind": "success", "task": "add", "result": {"x": [1]}, "attempt": 2, "worker": None}),
    (TaskRequest, {"id": "t3", "task": "add", "task_args": None, "task_kwargs": {"a": 1}, "eta": 7.5}),
    (TaskRequest, {"id": None, "task": "add"}),  # a required field given None keeps it, as Faust does
    (TaskState, {"id": "t4", "task": "add", "status": "queued", "attempts": 0}),
]


@pytest.mark.parametrize("cls,fields", SAMPLES)
def test_a_record_built_equals_faust_s(cls: type[faust.Record], fields: dict[str, Any]) -> None:
    fast, slow = build(cls, fields), cls(**fields)
    assert type(fast) is cls
    assert fast.__dict__ == slow.__dict__
    assert fast.dumps(serializer="json") == slow.dumps(serializer="json")
    assert cls.loads(fast.dumps(serializer="json"), serializer="json") == slow


@pytest.mark.parametrize("fields", [{"id": "t", "kind": QUEUED, "task": "a", "colour": "red"},  # unknown
                                    {"id": "t", "task": "a"}])  # kind missing
def test_a_field_unknown_or_missing_is_a_type_error_as_with_faust(fields: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        TaskEvent(**fields)
    with pytest.raises(TypeError):
        build(TaskEvent, fields)


def test_a_record_whose_fields_coerce_is_refused() -> None:
    class Coercing(faust.Record, coerce=True):
        n: int
        label: Optional[str] = None

    with pytest.raises(ValueError):
        build(Coercing, {"n": "1"})


def test_every_record_yadtq_keeps_can_be_built() -> None:
    for cls in (TaskEvent, TaskRequest, TaskState, Heartbeat, DeadLetter, ScheduledRun):
        required = {name for name in cls._options.fields if name not in cls._options.defaults}
        record = build(cls, {name: "x" for name in required})
        assert record.__dict__ == cls(**{name: "x" for name in required}).__dict__


@pytest.mark.parametrize("item", [["id", "kind", "task"], "id", 7])
def test_a_batch_item_that_is_not_an_object_is_a_type_error(item: Any) -> None:
    # The status agent logs a batch it cannot unpack and goes on (agents/status.py).
    with pytest.raises(TypeError):
        TaskEvent(id="b", kind="batch", task="", events=[item]).unpacked()
