"""Held ``queued`` rows (yadtq_app.held_submissions.HeldSubmissions): what is held, and
when the events record that carried them is acknowledged."""

from __future__ import annotations

from faust.types.tuples import Message

from yadtq_app.held_submissions import HeldSubmissions
from yadtq_app.records import QUEUED, TaskEvent


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Read:
    """An events record as the status agent reads it: a Faust message, referenced once
    by the agent's stream (Faust's ack gives that reference back)."""

    def __init__(self, offset: int) -> None:
        self.message = Message("events", 0, offset, 0.0, 0, None, b"k", b"v", None)
        self.message.refcount = 1

    def ack(self) -> bool:
        return self.message.ack(None)  # type: ignore[arg-type]  # Message.ack only hands the consumer on


def queued(task_id: str) -> TaskEvent:
    return TaskEvent(id=task_id, kind=QUEUED, task="add", task_args=[1, 2], at=1.0, submitted_at=1.0)


def test_a_record_is_acknowledged_once_none_of_its_events_is_held() -> None:
    held = HeldSubmissions(30.0, clock=Clock())
    record = Read(7)
    held.hold(record, [queued("a"), queued("b")])
    record.ack()  # the agent is done with it: not acknowledged while "a" and "b" are held
    assert not record.message.acked and len(held) == 2 and "a" in held
    assert held.get("a") is not None and held.get("a") is held.get("a")
    first = held.take("a")
    assert first is not None and first.id == "a" and "a" not in held
    assert not record.message.acked
    assert held.take("a") is None  # taken once only
    assert held.take("b") is not None
    assert record.message.acked and len(held) == 0


def test_events_held_past_the_hold_are_due_oldest_first() -> None:
    clock = Clock()
    held = HeldSubmissions(hold=30.0, clock=clock)
    old, new = Read(1), Read(2)
    held.hold(old, [queued("a"), queued("b")])
    clock.now += 10
    held.hold(new, [queued("c")])
    clock.now += 19.9
    assert list(held.due()) == []
    clock.now += 0.1
    held.take("a")  # its task wrote its row meanwhile
    assert [(r.event, [e.id for e in events]) for r, events in held.due()] == [(old, ["b"])]
    clock.now += 10
    assert [(r.event, [e.id for e in events]) for r, events in held.due()] == [(old, ["b"]), (new, ["c"])]


def test_close_lets_go_of_every_record() -> None:
    held = HeldSubmissions(30.0, clock=Clock())
    first, second, done = Read(1), Read(2), Read(3)  # the agent has not acknowledged them yet
    held.hold(first, [queued("a")])
    held.hold(second, [queued("b"), queued("c")])
    held.hold(done, [queued("d")])
    held.take("d")
    assert held.close() == 3
    assert len(held) == 0 and list(held.due()) == [] and held.get("b") is None
    for record in (first, second, done):
        assert record.message.refcount == 1 and not record.message.acked  # the hold's reference back, once


def test_nothing_is_held_from_close_until_reopen() -> None:
    # A record the agent still handles after a rebalance began must not be held: Faust
    # waits for its ack before the worker rejoins, and nothing would give it back.
    held = HeldSubmissions(30.0, clock=Clock())
    held.close()
    late = Read(1)
    assert not held.has_room(1)
    assert held.hold(late, [queued("a")]) is False
    assert len(held) == 0 and "a" not in held and late.message.refcount == 1
    assert late.ack() and late.message.acked  # the agent's own ack is the last reference
    held.reopen()
    again = Read(2)
    assert held.has_room(1) and held.hold(again, [queued("b")]) is True
    again.ack()
    assert "b" in held and not again.message.acked


def test_room_is_bounded_and_a_hold_of_zero_holds_nothing() -> None:
    held = HeldSubmissions(30.0, limit=2, clock=Clock())
    assert held.has_room(2) and not held.has_room(3)
    held.hold(Read(1), [queued("a")])
    assert held.has_room(1) and not held.has_room(2)
    assert not HeldSubmissions(hold=0, clock=Clock()).has_room(1)


def test_a_held_event_stands_for_one_row_built_once() -> None:
    held = HeldSubmissions(30.0, clock=Clock())
    record = Read(1)
    held.hold(record, [queued("a")])
    row = held.row("a")
    assert row is not None and (row.id, row.status, row.task_args, row.submitted_at) == ("a", "queued", [1, 2], 1.0)
    assert held.row("a") is row and held.row("b") is None
    assert held.take_row("a") is row
    assert held.row("a") is None and held.take_row("a") is None and record.message.refcount == 1
