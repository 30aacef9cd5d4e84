"""Commit bookkeeping: what the worker consumer commits, and what it reads again."""

from __future__ import annotations

from typing import Any

import pytest

from yadtq_app.kafka import private


def test_commit_waits_for_the_message_at_the_committed_offset() -> None:
    from intervaltree import IntervalTree

    from yadtq_app.kafka.commits import head_unacked

    gap = IntervalTree()
    # offset 3 still running, 4..13 acked: Faust 0.15.3 alone would commit 14
    assert head_unacked(3, list(range(4, 14)), set(range(4, 14)), gap)
    assert head_unacked(0, [1, 2], {1, 2}, gap)  # and from 0, which Faust skips checking
    assert not head_unacked(3, [3, 4, 5], {3, 4, 5}, gap)
    assert not head_unacked(None, [4], {4}, gap)
    assert not head_unacked(3, [], set(), gap)
    gap.addi(3, 4)  # a known hole (e.g. a transaction marker) counts as done
    assert not head_unacked(3, [4], {4}, gap)


def test_acks_of_an_earlier_generation_do_not_count_towards_commits(monkeypatch: Any) -> None:
    from faust.types import TP
    from faust.types.tuples import ConsumerMessage

    from yadtq_app.application import app
    from yadtq_app.kafka.commits import stale_ack

    assert stale_ack(3, 4) and not stale_ack(4, 4) and not stale_ack(None, 4)
    consumer = app.consumer
    tp = TP(app.settings.task_topic, 5)
    monkeypatch.setattr(app, "consumer_generation_id", 7)
    # In a worker the task agent subscribes the topic with acks on; here nothing does.
    monkeypatch.setattr(app.topics, "acks_enabled_for", lambda topic: topic == tp.topic)

    def message(offset: int, generation: int) -> ConsumerMessage:
        return ConsumerMessage(topic=tp.topic, partition=tp.partition, offset=offset, timestamp=0.0,
                               timestamp_type=0, headers=[], key=b"k", value=b"{}", checksum=None,
                               generation_id=generation)

    was_active = app.flow_control.is_active()
    app.flow_control.resume()  # as in a worker between rebalances
    old, new = message(10, 6), message(11, 7)
    private.unacked_messages(consumer).update({old, new})
    assert consumer.ack(old) is False  # dropped at the rebalance: read again, not committed
    assert old.acked and old not in private.unacked_messages(consumer)
    assert consumer.ack(new) is True
    assert private.acked(consumer)[tp] == [11] and 10 not in private.acked_index(consumer)[tp]
    # While a rebalance has the flow off, streams drop what they read and ack it: not counted.
    dropped = message(12, 7)
    app.flow_control.suspend()
    try:
        assert consumer.ack(dropped) is False
    finally:
        app.flow_control.resume()
    assert private.acked(consumer)[tp] == [11]
    assert consumer.ack(message(13, 7)) is True
    if not was_active:
        app.flow_control.suspend()


def seekable_consumer(monkeypatch: Any, partition: int, topic: str = "") -> tuple[Any, Any, list[tuple[Any, int]]]:
    """The app's real consumer on the running loop, holding one partition (of the task
    topic unless ``topic``), its seeks recorded instead of sent to a broker; a seek back
    is tried every 10 ms."""
    import asyncio

    from faust.types import TP

    from yadtq_app.application import app
    from yadtq_app.kafka import consumer as consumer_module

    consumer = app.consumer
    tp = TP(topic or app.settings.task_topic, partition)
    seeks: list[tuple[Any, int]] = []

    async def seek(partition: Any, offset: int) -> None:  # the broker side of a seek
        seeks.append((partition, offset))

    monkeypatch.setattr(consumer, "seek", seek)
    monkeypatch.setattr(consumer, "assignment", lambda: {tp})
    monkeypatch.setattr(consumer, "loop", asyncio.get_running_loop())
    monkeypatch.setattr(consumer, "flow_active", True)
    monkeypatch.setattr(consumer_module, "REREAD_DELAY", 0.01)
    return consumer, tp, seeks


async def until(check: Any, timeout: float = 1.0) -> None:
    """Let the loop run until ``check()`` holds (at most ``timeout`` s)."""
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout
    while not check() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("which", ["task", "events"])
async def test_a_task_or_event_message_dropped_at_a_rebalance_is_read_again(monkeypatch: Any, which: str) -> None:
    import asyncio

    from faust.types.tuples import ConsumerMessage

    from yadtq_app.application import app

    topic = app.settings.task_topic if which == "task" else app.settings.events_topic
    consumer, tp, seeks = seekable_consumer(monkeypatch, 2, topic)
    monkeypatch.setattr(app, "consumer_generation_id", 3)
    monkeypatch.setattr(app.topics, "acks_enabled_for", lambda topic: True)
    was_active = app.flow_control.is_active()
    app.flow_control.suspend()  # a rebalance began: the stream drops what it reads
    try:
        for offset in (7, 8):
            dropped = ConsumerMessage(topic=tp.topic, partition=tp.partition, offset=offset, timestamp=0.0,
                                      timestamp_type=0, headers=[], key=b"k", value=b"{}", checksum=None,
                                      generation_id=3)
            assert consumer.ack(dropped) is False
        await asyncio.sleep(0.05)
        assert seeks == []  # not while the rebalance is under way: its own seek comes first
        app.flow_control.resume()
        await until(lambda: bool(seeks))
        assert seeks == [(tp, 7)]  # once, from the first message dropped
    finally:
        if not was_active:
            app.flow_control.suspend()


def test_a_read_from_before_the_seek_does_not_move_the_read_offset_on() -> None:
    from yadtq_app.kafka.commits import ReadOffsets

    offsets = ReadOffsets()
    assert offsets["tp"] is None  # as Faust's defaultdict(lambda: None)
    offsets.update({"tp": 3})  # Faust's perform_seek
    offsets.hold("tp", 3)
    for stale in (11, 12, 13):  # a batch fetched before the seek, still being delivered
        offsets["tp"] = stale
    assert offsets["tp"] == 3 and offsets.held("tp")  # so the seek's reads from 3 are not dropped
    offsets["tp"] = 3  # the message at the committed offset, read again
    assert not offsets.held("tp")
    offsets["tp"] = 4
    assert offsets["tp"] == 4
    offsets.hold("other", 0)
    offsets.pop("other")  # revoked
    assert not offsets.held("other") and offsets["other"] is None


def test_the_consumer_reads_offsets_through_read_offsets() -> None:
    from yadtq_app.application import app
    from yadtq_app.kafka.commits import ReadOffsets

    assert isinstance(private.read_offsets(app.consumer), ReadOffsets)


async def test_the_message_at_the_seek_position_must_reach_the_agent(monkeypatch: Any) -> None:
    import asyncio

    from yadtq_app.application import app
    from yadtq_app.kafka import consumer as consumer_module

    consumer, tp, seeks = seekable_consumer(monkeypatch, 1)
    monkeypatch.setattr(consumer_module, "EXPECT_GRACE", 0.05)
    was_active = app.flow_control.is_active()
    app.flow_control.resume()
    try:
        consumer._expect(tp, 3)  # as perform_seek does
        consumer.delivered(tp, 3)
        consumer.delivered(tp, 4)
        await asyncio.sleep(0.2)
        assert seeks == []  # it came first: nothing to do
        consumer._expect(tp, 3)
        consumer.delivered(tp, 4)  # a later one first...
        consumer.delivered(tp, 3)  # ...and the expected one right after: fine
        await asyncio.sleep(0.2)
        assert seeks == []
        consumer._expect(tp, 3)
        for offset in (4, 5, 6):  # the one at 3 was lost
            consumer.delivered(tp, offset)
        await until(lambda: bool(seeks))
        assert seeks == [(tp, 3)]
    finally:
        consumer._yadtq_expect.pop(tp, None)
        if not was_active:
            app.flow_control.suspend()
