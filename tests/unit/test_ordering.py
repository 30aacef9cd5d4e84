"""The sequencer's pure logic (yadtq_app.ordering.sequence)."""

from __future__ import annotations

import pytest

from yadtq_app.ordering import DONE, ENQUEUE, KeyQueue, SequencerMessage, sequence


def enq(task_id: str) -> SequencerMessage:
    return SequencerMessage(kind=ENQUEUE, key="k", task_id=task_id, wire={"task-id": task_id, "task": "t"})


def done(task_id: str) -> SequencerMessage:
    return SequencerMessage(kind=DONE, key="k", task_id=task_id)


def test_one_at_a_time_in_order() -> None:
    row, send = sequence(None, enq("a"))
    assert send == {"task-id": "a", "task": "t"} and row.current == "a"
    row, send = sequence(row, enq("b"))
    assert send is None
    row, send = sequence(row, enq("c"))
    assert send is None and [w["task-id"] for w in row.waiting] == ["b", "c"]
    row, send = sequence(row, done("a"))
    assert send["task-id"] == "b" and row.current == "b"
    row, send = sequence(row, done("b"))
    assert send["task-id"] == "c"
    row, send = sequence(row, done("c"))
    assert row is None and send is None


def test_redelivery_and_duplicates_are_harmless() -> None:
    row, _ = sequence(None, enq("a"))
    row, _ = sequence(row, enq("b"))
    again, send = sequence(row, enq("a"))  # enqueue redelivered after a crash: send it again
    assert send["task-id"] == "a" and again.current == "a"
    dup, send = sequence(row, enq("b"))
    assert send is None and len(dup.waiting) == 1
    stale, send = sequence(row, done("zzz"))  # done for a task that is not current
    assert stale.current == "a" and send["task-id"] == "a"
    assert sequence(None, done("a")) == (None, None)


def test_the_input_row_is_not_changed() -> None:
    row = KeyQueue(key="k", current="a", current_wire={"task-id": "a"}, waiting=[{"task-id": "b"}])
    sequence(row, done("a"))
    assert row.current == "a" and row.waiting == [{"task-id": "b"}]


def test_bad_messages() -> None:
    with pytest.raises(ValueError):
        sequence(None, SequencerMessage(kind=ENQUEUE, key="k", task_id="a"))
    with pytest.raises(ValueError):
        sequence(None, SequencerMessage(kind="what", key="k", task_id="a"))
