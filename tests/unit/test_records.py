"""The task wire format: parsing, validation reasons, round trips, row/heartbeat JSON."""

from __future__ import annotations

import json

import pytest

from yadtq_app.errors import InvalidTask
from yadtq_app.ids import MAX_ID_LENGTH
from yadtq_app.records import BATCH, QUEUED, Heartbeat, TaskEvent, TaskRequest, TaskState
from yadtq_app.wire import parse_task_message, task_request_from_json

SEED = b'{"task-id": "12345abc", "task": "multiply", "args": [4, 5]}'
LIMIT = 1_000_000


def parse(raw: bytes | None, **kw: object) -> TaskRequest:
    return parse_task_message(raw, max_bytes=LIMIT, **kw)  # type: ignore[arg-type]


def test_seed_message_parses() -> None:
    req = parse(SEED)
    assert (req.id, req.task, req.task_args, req.task_kwargs, req.submitted_at) == (
        "12345abc", "multiply", [4, 5], {}, None)
    assert req.key == b"12345abc"


def test_defaults_and_generated_id() -> None:
    a = task_request_from_json({"task": "echo"})
    b = task_request_from_json({"task": "echo"})
    assert a.task_args == [] and a.task_kwargs == {}
    assert isinstance(a.id, str) and a.id and a.id != b.id


def test_null_args_and_kwargs_mean_empty() -> None:
    req = task_request_from_json({"task": "echo", "args": None, "kwargs": None})
    assert req.task_args == [] and req.task_kwargs == {}


def test_default_id_used_only_when_task_id_missing() -> None:
    assert parse(b'{"task": "echo"}', default_id="from-key").id == "from-key"
    assert parse(SEED, default_id="from-key").id == "12345abc"


def test_underscore_task_id_alias() -> None:
    assert task_request_from_json({"task_id": "abc", "task": "echo"}).id == "abc"


def test_submitted_at_number_becomes_float() -> None:
    req = task_request_from_json({"task": "echo", "submitted_at": 17})
    assert req.submitted_at == 17.0 and isinstance(req.submitted_at, float)


@pytest.mark.parametrize("raw, reason", [
    (b"", "empty"),
    (None, "empty"),
    (b"\xff", "not-utf8"),
    (b"{not json", "not-json"),
    (b"[1, 2]", "not-object"),
    (b'"a string"', "not-object"),
    (b"42", "not-object"),
])
def test_undecodable_messages(raw: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidTask) as ei:
        parse(raw)
    assert ei.value.reason == reason
    assert ei.value.task_id is None


def test_too_large() -> None:
    with pytest.raises(InvalidTask) as ei:
        parse_task_message(SEED, max_bytes=len(SEED) - 1)
    assert ei.value.reason == "too-large"
    assert parse_task_message(SEED, max_bytes=len(SEED)).id == "12345abc"  # the limit itself is fine


@pytest.mark.parametrize("obj, task_id", [
    ({"task-id": "t1"}, "t1"),                                        # task missing
    ({"task-id": "t1", "task": 7}, "t1"),                            # task not a string
    ({"task-id": "t1", "task": ""}, "t1"),                           # task empty
    ({"task-id": "t1", "task": "echo", "args": {"a": 1}}, "t1"),     # args not a list
    ({"task-id": "t1", "task": "echo", "args": "4 5"}, "t1"),
    ({"task-id": "t1", "task": "echo", "kwargs": [1]}, "t1"),        # kwargs not a dict
    ({"task-id": "t1", "task": "echo", "submitted_at": True}, "t1"),
    ({"task-id": "t1", "task": "echo", "submitted_at": "now"}, "t1"),
    ({"task-id": 12345, "task": "echo"}, None),                      # task-id not a string
    ({"task-id": "", "task": "echo"}, None),
    ({"task-id": "x" * (MAX_ID_LENGTH + 1), "task": "echo"}, None),
    ({"task-id": "a\nb", "task": "echo"}, None),
    ({"task-id": "a\x85b", "task": "echo"}, None),                   # a C1 control
    ({"task-id": "a\ud800", "task": "echo"}, None),                  # a lone surrogate: no UTF-8 key
    ({"task-id": "t1", "task": "echo", "ordering_key": "\udfff"}, "t1"),
])
def test_bad_fields(obj: dict, task_id: str | None) -> None:
    with pytest.raises(InvalidTask) as ei:
        parse(json.dumps(obj).encode())
    assert ei.value.reason == "bad-field"
    assert ei.value.task_id == task_id


def test_longest_allowed_id_is_accepted() -> None:
    assert task_request_from_json({"task-id": "x" * MAX_ID_LENGTH, "task": "echo"}).id == "x" * MAX_ID_LENGTH


@pytest.mark.parametrize("req", [
    TaskRequest(id="abc", task="multiply", task_args=[4, 5], task_kwargs={}),
    TaskRequest(id="id-2", task="echo", task_args=[{"nested": [1, None]}], task_kwargs={"k": "é"},
                submitted_at=1700000000.25),
])
def test_wire_round_trip(req: TaskRequest) -> None:
    wire = req.to_wire()
    assert json.loads(req.encode()) == wire
    back = parse(req.encode())
    assert back.to_wire() == wire
    assert (back.id, back.task, back.task_args, back.task_kwargs, back.submitted_at) == (
        req.id, req.task, req.task_args, req.task_kwargs, req.submitted_at)
    assert task_request_from_json(wire).to_wire() == wire


def test_to_wire_omits_missing_submitted_at() -> None:
    wire = TaskRequest(id="a", task="echo").to_wire()
    assert wire == {"task-id": "a", "task": "echo", "args": [], "kwargs": {}}


def test_task_state_to_json_keys() -> None:
    row = TaskState(id="a", task="multiply", status="success", task_args=[4, 5], result=20, attempts=1,
                    worker="w1", submitted_at=1.0, started_at=2.0, finished_at=3.0)
    out = row.to_json()
    assert set(out) == {"task-id", "task", "args", "kwargs", "status", "result", "error", "attempts",
                        "worker", "submitted_at", "started_at", "finished_at", "retries", "max_retries",
                        "timeout", "eta", "ordering_key", "next_run_at", "progress", "cancel_requested", "history"}
    assert out["task-id"] == "a" and out["args"] == [4, 5] and out["result"] == 20
    assert out["finished_at"] == 3.0
    json.dumps(out)


def _hb(at: float) -> Heartbeat:
    return Heartbeat(worker="w1", host="h", pid=1, web_url="http://x", at=at, started_at=0.0, partitions=[0, 3])


@pytest.mark.parametrize("now, timeout, alive", [
    (100.0, 3.0, True),
    (102.0, 3.0, True),
    (103.0, 3.0, True),     # exactly at the timeout still counts
    (103.5, 3.0, False),
    (110.0, 20.0, True),
    (110.0, 5.0, False),
])
def test_heartbeat_alive(now: float, timeout: float, alive: bool) -> None:
    out = _hb(100.0).to_json(now=now, timeout=timeout)
    assert out["alive"] is alive
    assert out["id"] == "w1" and out["last_heartbeat"] == 100.0 and out["partitions"] == [0, 3]


def test_the_status_table_writes_the_same_bytes_faust_would_and_reads_them_back() -> None:
    """StatusTable serializes a row once for the store and the changelog (see
    tables.task_status): the bytes must be Faust's own for the table, so recovery and
    reads of rows written either way agree."""
    from yadtq_app.application import app
    from yadtq_app.tables.task_status import task_status

    row = TaskState(id="t1", task="add", status="success", task_args=[1, 2], result=3, attempts=1,
                    history=[{"attempt": 1, "status": "success"}], options={"timeout": 5.0})
    faust_bytes = app.serializers.dumps_value(task_status.value_type, row, serializer=task_status.value_serializer)
    assert row.dumps() == faust_bytes
    # Bytes pass through Faust's value encoding unchanged (store and changelog alike)...
    assert app.serializers.dumps_value(task_status.value_type, faust_bytes,
                                       serializer=task_status.value_serializer) == faust_bytes
    # ...and decode to the same row.
    assert task_status.data._decode_value(faust_bytes) == row


def test_a_stored_row_reads_as_the_record_would_answer_it() -> None:
    """TaskState.json_from_stored (the batch status read's path) answers what to_json()
    of the decoded record answers, also for a row stored before some fields existed."""
    rows = [
        TaskState(id="t1", task="add", status="queued", task_args=[1, 2], submitted_at=10.0),
        TaskState(id="t2", task="echo", status="failed", task_kwargs={"value": [1]}, attempts=3, retries=2,
                  error={"type": "KeyError", "message": "'k'", "traceback": None}, worker="w1",
                  options={"max_retries": 2, "timeout": 5.0, "eta": 12.0, "ordering_key": "k"},
                  history=[{"attempt": 1, "status": "retrying"}], started_at=11.0, finished_at=12.5,
                  cancel_requested=True, progress={"fraction": 0.5}, next_run_at=None),
    ]
    for row in rows:
        assert TaskState.json_from_stored(row.dumps()) == row.to_json()
        assert json.loads(json.dumps(row.to_json())) == row.to_json()
    old = json.loads(rows[1].dumps())
    for missing in ("history", "lease_until", "cancel_requested", "progress", "retries"):
        del old[missing]
    answer = TaskState.json_from_stored(json.dumps(old).encode())
    assert answer == {**rows[1].to_json(), "history": [], "cancel_requested": False, "progress": None,
                      "retries": 0}
    assert TaskState.loads(json.dumps(old).encode()).to_json() == answer  # the record's own defaults agree


def _deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


@pytest.mark.parametrize("raw, reason, task_id", [
    (b'{"task-id": "n1", "task": "echo", "args": [NaN]}', "bad-number", "n1"),
    (b'{"task-id": "n2", "task": "echo", "args": [Infinity]}', "bad-number", "n2"),
    (b'{"task-id": "n3", "task": "echo", "kwargs": {"v": -Infinity}}', "bad-number", "n3"),
    (b'{"task-id": "n4", "task": "echo", "args": [1e400]}', "bad-number", "n4"),
    (b'{"task-id": "d1", "task": "echo", "args": ' + _deep(32) + b"}", "too-deep", "d1"),
    (b'{"task-id": "d2", "task": "echo", "args": ' + _deep(100_000) + b"}", "too-deep", None),
    (b'{"task-id": "u1", "task": "echo", "priority": 1}', "unknown-field", "u1"),
    (b'{"task-id": "u2", "task": "echo", "queue": "q"}', "unknown-field", "u2"),
])
def test_strict_json_and_known_fields_only(raw: bytes, reason: str, task_id: str | None) -> None:
    with pytest.raises(InvalidTask) as ei:
        parse(raw)
    assert (ei.value.reason, ei.value.task_id) == (reason, task_id)


def test_nesting_limit_counts_the_message_itself() -> None:
    at_limit = b'{"task": "echo", "args": ' + _deep(31) + b"}"
    assert parse(at_limit).task_args == json.loads(_deep(31))
    with pytest.raises(InvalidTask):
        parse(at_limit, max_depth=31)
    assert parse(b'{"task": "echo", "args": [1.5, -2e300, 0]}').task_args == [1.5, -2e300, 0]


def test_every_field_yadtq_writes_is_a_known_field() -> None:
    req = TaskRequest(id="a", task="echo", task_args=[1], submitted_at=1.0, max_retries=1, timeout=2.0, eta=3.0,
                      ordering_key="k", attempt=2, sequenced=True)
    assert task_request_from_json(req.to_wire()) == req


def test_faust_shares_a_field_default_between_records() -> None:
    # What records.py's docstring warns about: a list or dict field is replaced, never changed in place.
    first, second = TaskRequest(id="a", task="t"), TaskRequest(id="b", task="t")
    assert first.task_args is second.task_args and first.task_kwargs is second.task_kwargs
    assert TaskRequest(id="c", task="t", task_args=[1]).task_args is not first.task_args  # the control case


def test_a_batch_of_events_crosses_the_wire_and_unpacks_in_order() -> None:
    events = [TaskEvent(id=f"t{i}", kind=QUEUED, task="add", task_args=[i, i], at=float(i), options={"timeout": 3})
              for i in range(3)]
    wire = TaskEvent.batch([e.asdict() for e in events]).dumps(serializer="json")
    back = TaskEvent.loads(wire, serializer="json")
    assert back.kind == BATCH
    assert [e.asdict() for e in back.unpacked()] == [e.asdict() for e in events]
    assert events[0].unpacked() == [events[0]]


def test_a_batch_carries_only_the_fields_a_queued_event_sets_and_unpacks_to_the_event() -> None:
    requests = [TaskRequest(id="a", task="add", task_args=[1, 2], submitted_at=10.0),
                TaskRequest(id="b", task="add", eta=99.0, timeout=5.0),  # later than "at": scheduled
                TaskRequest(id="c", task="add", eta=1.0)]  # already due
    fields = [TaskEvent.queued_fields(r, 20.0) for r in requests]
    assert all(value is not None for f in fields for value in f.values())
    back = TaskEvent.loads(TaskEvent.batch(fields).dumps(serializer="json"), serializer="json")
    assert back.unpacked() == [TaskEvent.queued(r, 20.0) for r in requests]
    assert [e.next_run_at for e in back.unpacked()] == [None, 99.0, None]
