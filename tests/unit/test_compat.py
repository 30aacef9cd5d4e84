"""Broker profiles: Faust options and transport choice (no broker is contacted)."""

from __future__ import annotations

import inspect
import time
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka

from yadtq_app.compat import (
    FAUST_REQUEST_TIMEOUT,
    KAFKA_HEARTBEAT_INTERVAL,
    KAFKA_SESSION_TIMEOUT,
    BrokerProfile,
    EmbeddedProfile,
    EmbeddedTransport,
    profile_for,
)
from yadtq_app.errors import ConfigurationError
from yadtq_app.settings import Settings

KAFKA = "kafka://kafka-1:9092"


def remedies(transport: type) -> tuple[int, int, bool]:
    """(idle fetch wait, busy fetch wait, fix_end_offsets) baked into a transport made by
    compat._transport_with."""
    thread_cls = inspect.getclosurevars(transport.Consumer._new_consumer_thread).nonlocals["ConsumerThread"]
    wait = inspect.getclosurevars(thread_cls._create_worker_consumer).nonlocals["fetch_max_wait_ms"]
    busy = inspect.getclosurevars(thread_cls.on_start).nonlocals["busy_fetch_max_wait_ms"]
    fix = inspect.getclosurevars(thread_cls._highwaters).nonlocals["fix_end_offsets"]
    return wait, busy, fix


def test_default_settings_get_embedded_profile() -> None:
    p = profile_for(Settings())
    assert type(p) is EmbeddedProfile and p.name == "embedded"
    opts = p.faust_options()
    assert opts["broker_session_timeout"] == 2.0
    assert opts["broker_heartbeat_interval"] == 0.5
    # Long enough for a busy worker to finish its in-flight tasks and rejoin.
    assert opts["broker_rebalance_timeout"] == 10.0
    assert opts["producer_acks"] == -1
    assert opts["topic_partitions"] == 8 and opts["topic_replication_factor"] == 1


def test_kafka_profile_options() -> None:
    p = profile_for(Settings(broker_url=KAFKA))
    assert type(p) is BrokerProfile and p.name == "kafka"
    assert p.faust_options() == {
        # Apache Kafka's consumer defaults since 3.0 (KIP-735), not the embedded broker's 2 s / 0.5 s.
        "broker_session_timeout": 45.0, "broker_heartbeat_interval": 3.0,
        "broker_rebalance_timeout": 60.0,  # Faust's default
        "producer_acks": -1,  # acks=all
        "topic_partitions": 8, "topic_replication_factor": 1,
    }
    assert p.topic_config() == {}  # the broker's min.insync.replicas unless set


def test_kafka_profile_takes_partitions_replication_and_min_isr_from_settings() -> None:
    p = profile_for(Settings(broker_url=KAFKA, partitions=24, replication_factor=3, min_insync_replicas=2))
    opts = p.faust_options()
    assert opts["topic_partitions"] == 24 and opts["topic_replication_factor"] == 3
    assert opts["producer_acks"] == -1
    assert p.topic_config() == {"min.insync.replicas": "2"}


def test_kafka_profile_sets_nothing_else() -> None:
    # Faust's defaults otherwise: nothing about fetching, batching, standby replicas, ...
    opts = profile_for(Settings(broker_url=KAFKA)).faust_options()
    assert set(opts) == {"broker_session_timeout", "broker_heartbeat_interval", "broker_rebalance_timeout",
                         "producer_acks", "topic_partitions", "topic_replication_factor"}


def test_kafka_profile_defaults_fit_kafka_and_faust_limits() -> None:
    session, heartbeat = BrokerProfile(Settings(broker_url=KAFKA)).timeouts()
    assert 6.0 <= session <= FAUST_REQUEST_TIMEOUT  # group.min.session.timeout.ms .. Faust's request timeout
    assert heartbeat <= session / 3  # Kafka: heartbeat.interval.ms at most a third of the session
    assert (session, heartbeat) == (KAFKA_SESSION_TIMEOUT, KAFKA_HEARTBEAT_INTERVAL) == (45.0, 3.0)


def test_embedded_profile_sends_no_min_isr() -> None:
    p = profile_for(Settings(replication_factor=1, min_insync_replicas=1))
    assert type(p) is EmbeddedProfile and p.topic_config() == {}
    assert p.faust_options()["topic_partitions"] == 8


@pytest.mark.parametrize("kwargs, match", [
    ({"session_timeout": 10.0, "heartbeat_timeout": 10.0}, "YADTQ_CONSUMER_HEARTBEAT"),
    ({"heartbeat_timeout": 50.0}, "shorter than the session timeout"),
    ({"session_timeout": 120.0}, "request timeout"),
])
def test_bad_consumer_timeouts_are_configuration_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        profile_for(Settings(broker_url=KAFKA, **kwargs)).faust_options()


def test_explicit_profile_setting_chooses_class() -> None:
    assert type(profile_for(Settings(broker_profile="kafka"))) is BrokerProfile
    assert type(profile_for(Settings(broker_url=KAFKA, broker_profile="embedded"))) is EmbeddedProfile


def test_kafka_timeouts_overridden_by_settings() -> None:
    opts = profile_for(Settings(broker_url=KAFKA, session_timeout=10.0, heartbeat_timeout=1.0)).faust_options()
    assert opts["broker_session_timeout"] == 10.0
    assert opts["broker_heartbeat_interval"] == 1.0
    assert opts["broker_rebalance_timeout"] == 60.0  # never below Faust's default
    opts = profile_for(Settings(broker_url=KAFKA, session_timeout=90.0)).faust_options()
    assert opts["broker_rebalance_timeout"] == 90.0
    opts = profile_for(Settings(broker_url=KAFKA, session_timeout=6.0)).faust_options()
    assert opts["broker_session_timeout"] == 6.0 and opts["broker_heartbeat_interval"] == 3.0


def test_embedded_timeouts_overridden_by_settings() -> None:
    opts = profile_for(Settings(session_timeout=10.0, heartbeat_timeout=2.0)).faust_options()
    assert opts["broker_session_timeout"] == 10.0
    assert opts["broker_heartbeat_interval"] == 2.0
    assert opts["broker_rebalance_timeout"] == 10.0


def test_embedded_transport_replaces_consumer() -> None:
    transport = profile_for(Settings()).transport_class()
    assert transport is not None
    assert issubclass(transport, faust_aiokafka.Transport)
    assert transport.Consumer is not faust_aiokafka.Consumer
    assert issubclass(transport.Consumer, faust_aiokafka.Consumer)
    assert faust_aiokafka.Transport.Consumer is faust_aiokafka.Consumer  # the stock class is untouched
    # 10 ms while idle, 3 ms while tasks flow (compat.FetchWait)
    assert remedies(transport) == (10, 3, True)
    assert remedies(EmbeddedTransport) == (10, 3, True)


def test_embedded_transport_honours_settings() -> None:
    transport = profile_for(Settings(fetch_max_wait_ms=50, fix_end_offsets=False)).transport_class()
    assert remedies(transport) == (50, 3, False)
    transport = profile_for(Settings(fetch_max_wait_ms=50, busy_fetch_max_wait_ms=7)).transport_class()
    assert remedies(transport) == (50, 7, True)
    # an idle wait below the busy one is both
    assert remedies(profile_for(Settings(fetch_max_wait_ms=2)).transport_class()) == (2, 2, True)


@pytest.mark.parametrize("kwargs", [{"fetch_max_wait_ms": 0}, {"busy_fetch_max_wait_ms": 0}])
def test_embedded_profile_refuses_a_zero_fetch_wait(kwargs: dict[str, int]) -> None:
    # The embedded broker's fetch loop never runs with a 0 ms wait: every fetch is empty.
    with pytest.raises(ConfigurationError, match="empty"):
        profile_for(Settings(**kwargs)).transport_class()


def test_kafka_transport_keeps_faust_defaults() -> None:
    # Always yadtq's consumer (for the seek fix every broker needs), with the profile's
    # fetch wait (not Faust's 1.5 s) and no end-offset remedy.
    for settings in (Settings(broker_url=KAFKA), Settings(broker_url=KAFKA, fix_end_offsets=False)):
        t = profile_for(settings).transport_class()
        assert t.Consumer is not faust_aiokafka.Consumer
        assert remedies(t) == (100, 100, False)  # Kafka's fetch wakes on data: one wait


def test_kafka_transport_when_remedies_requested() -> None:
    t = profile_for(Settings(broker_url=KAFKA, fix_end_offsets=True)).transport_class()
    assert t is not None and t.Consumer is not faust_aiokafka.Consumer
    assert remedies(t) == (100, 100, True)
    t = profile_for(Settings(broker_url=KAFKA, fetch_max_wait_ms=50)).transport_class()
    assert remedies(t) == (50, 50, False)
    t = profile_for(Settings(broker_url=KAFKA, busy_fetch_max_wait_ms=20)).transport_class()
    assert remedies(t) == (100, 20, False)


def test_kafka_transport_honours_zero_fetch_wait() -> None:
    t = profile_for(Settings(broker_url=KAFKA, fetch_max_wait_ms=0)).transport_class()
    assert remedies(t) == (0, 0, False)


def test_fetch_wait_is_busy_for_a_while_after_work() -> None:
    from yadtq_app.compat import FetchWait

    wait = FetchWait(10, 3, hold=0.5)
    assert wait.current() == 10  # nothing seen yet
    now = time.monotonic()
    wait.last_work = now
    assert wait.current() == 3
    wait.last_work = now - 0.6  # the last message came longer ago than the hold
    assert wait.current() == 10


def test_commit_waits_for_the_message_at_the_committed_offset() -> None:
    from intervaltree import IntervalTree

    from yadtq_app.compat import head_unacked

    gap = IntervalTree()
    # offset 3 still running, 4..13 acked: Faust 0.15.3 alone would commit 14
    assert head_unacked(3, list(range(4, 14)), set(range(4, 14)), gap)
    assert head_unacked(0, [1, 2], {1, 2}, gap)  # and from 0, which Faust skips checking
    assert not head_unacked(3, [3, 4, 5], {3, 4, 5}, gap)
    assert not head_unacked(None, [4], {4}, gap)
    assert not head_unacked(3, [], set(), gap)
    gap.addi(3, 4)  # a known hole (e.g. a transaction marker) counts as done
    assert not head_unacked(3, [4], {4}, gap)


def test_the_consumer_uses_the_commit_fix_on_every_profile() -> None:
    for settings in (Settings(), Settings(broker_url=KAFKA)):
        consumer = profile_for(settings).transport_class().Consumer
        assert consumer._new_offset is not faust_aiokafka.Consumer._new_offset


def test_acks_of_an_earlier_generation_do_not_count_towards_commits(monkeypatch: Any) -> None:
    from faust.types import TP
    from faust.types.tuples import ConsumerMessage

    from yadtq_app.application import app
    from yadtq_app.compat import stale_ack

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
    consumer._unacked_messages.update({old, new})
    assert consumer.ack(old) is False  # dropped at the rebalance: read again, not committed
    assert old.acked and old not in consumer._unacked_messages
    assert consumer.ack(new) is True
    assert consumer._acked[tp] == [11] and 10 not in consumer._acked_index[tp]
    # While a rebalance has the flow off, streams drop what they read and ack it: not counted.
    dropped = message(12, 7)
    app.flow_control.suspend()
    try:
        assert consumer.ack(dropped) is False
    finally:
        app.flow_control.resume()
    assert consumer._acked[tp] == [11]
    assert consumer.ack(message(13, 7)) is True
    if not was_active:
        app.flow_control.suspend()


def seekable_consumer(monkeypatch: Any, partition: int, topic: str = "") -> tuple[Any, Any, list[tuple[Any, int]]]:
    """The app's real consumer on the running loop, holding one partition (of the task
    topic unless ``topic``), its seeks recorded instead of sent to a broker; a seek back
    is tried every 10 ms."""
    import asyncio

    from faust.types import TP

    from yadtq_app import compat
    from yadtq_app.application import app

    consumer = app.consumer
    tp = TP(topic or app.settings.task_topic, partition)
    seeks: list[tuple[Any, int]] = []

    async def seek(partition: Any, offset: int) -> None:  # the broker side of a seek
        seeks.append((partition, offset))

    monkeypatch.setattr(consumer, "seek", seek)
    monkeypatch.setattr(consumer, "assignment", lambda: {tp})
    monkeypatch.setattr(consumer, "loop", asyncio.get_running_loop())
    monkeypatch.setattr(consumer, "flow_active", True)
    monkeypatch.setattr(compat, "REREAD_DELAY", 0.01)
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
    from yadtq_app.compat import ReadOffsets

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
    from yadtq_app.compat import ReadOffsets

    assert isinstance(app.consumer._read_offset, ReadOffsets)


async def test_the_message_at_the_seek_position_must_reach_the_agent(monkeypatch: Any) -> None:
    import asyncio

    from yadtq_app import compat
    from yadtq_app.application import app

    consumer, tp, seeks = seekable_consumer(monkeypatch, 1)
    monkeypatch.setattr(compat, "EXPECT_GRACE", 0.05)
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


# -- RecoveryWatchdog ----------------------------------------------------------------------
class FakeRecovery:
    """What the watchdog reads of Faust's Recovery service."""

    def __init__(self, started_ago: float, offsets: dict[Any, int], highwaters: dict[Any, int]) -> None:
        import time
        from collections import Counter

        self.in_recovery = True
        self._recovery_started_at = time.monotonic() - started_ago
        self._active_events_received_at: dict[Any, float] = {}
        self.active_offsets = Counter(offsets)
        self.active_highwaters = Counter(highwaters)

    def active_remaining(self) -> dict[Any, int]:
        return {tp: hw - self.active_offsets[tp] for tp, hw in self.active_highwaters.items()}


class FakeConsumer:
    def __init__(self) -> None:
        self._read_offset: dict[Any, int] = {}
        self._paused_partitions: set[Any] = set()
        self.seeks: list[tuple[Any, int]] = []
        self.resumed: list[Any] = []

    async def position(self, tp: Any) -> int:
        return 99

    async def seek(self, tp: Any, offset: int) -> None:
        self.seeks.append((tp, offset))

    def resume_partitions(self, tps: list[Any]) -> None:
        self.resumed.extend(tps)


class FakeApp:
    def __init__(self, recovery: FakeRecovery) -> None:
        from types import SimpleNamespace

        self.tables = SimpleNamespace(recovery=recovery)
        self.consumer = FakeConsumer()
        self.crashed: list[BaseException] = []

    async def crash(self, exc: BaseException) -> None:
        self.crashed.append(exc)


async def test_recovery_watchdog_seeks_a_silent_partition_again_then_stops_the_worker() -> None:
    import time

    from faust.types import TP

    from yadtq_app.compat import RecoveryWatchdog

    stuck, fine, done = TP("c", 0), TP("c", 1), TP("c", 2)
    recovery = FakeRecovery(5.0, {stuck: 20, fine: 5, done: 7}, {stuck: 40, fine: 9, done: 7})
    recovery._active_events_received_at[fine] = time.monotonic() - 1.0  # records arriving
    app = FakeApp(recovery)
    dog = RecoveryWatchdog(app, stall=3.0, give_up=60.0)
    await dog.check()
    assert app.consumer.seeks == [(stuck, 20)] and app.consumer.resumed == [stuck] and not app.crashed
    await dog.check()  # just sought: it gets its time
    assert len(app.consumer.seeks) == 1
    dog._kicked[stuck] = time.monotonic() - 4.0
    await dog.check()
    assert app.consumer.seeks == [(stuck, 20), (stuck, 20)] and not app.crashed
    # a minute without a record: it gives up
    recovery._recovery_started_at = time.monotonic() - 61.0
    dog._kicked[stuck] = time.monotonic() - 4.0
    await dog.check()
    assert len(app.crashed) == 1 and "c-0" in str(app.crashed[0]) and len(app.consumer.seeks) == 2
    # a record for it since: nothing to do
    recovery._active_events_received_at[stuck] = time.monotonic()
    dog._kicked.clear()
    await dog.check()
    assert len(app.consumer.seeks) == 2 and len(app.crashed) == 1
    # out of recovery: it forgets
    recovery.in_recovery = False
    await dog.check()
    assert dog._kicked == {}


# -- StreamWatchdog ------------------------------------------------------------------------
class StreamConsumer:
    """What the stream watchdog reads of the worker's consumer."""

    def __init__(self, committed: dict[Any, int], ends: dict[Any, int]) -> None:
        self._committed_offset = dict(committed)
        self._yadtq_floor: dict[Any, int] = {}
        self.ends = ends
        self.processing: set[tuple[Any, int]] = set()
        self.delivered_at: dict[Any, float] = {}
        self.seeks: list[tuple[Any, int]] = []

    def assignment(self) -> set[Any]:
        return set(self.ends)

    def highwater(self, tp: Any) -> int:
        return self.ends[tp]

    def reread(self, tp: Any, offset: int) -> None:
        self.seeks.append((tp, offset))


class StreamApp:
    def __init__(self, consumer: StreamConsumer) -> None:
        from types import SimpleNamespace

        self.consumer = consumer
        self.rebalancing = self.revoking = self.in_recovery = False
        self.flow = True
        self.flow_control = SimpleNamespace(is_active=lambda: self.flow)
        self.rereadable_topics = frozenset({"tasks", "events"})
        self.stats = SimpleNamespace(in_progress=0)
        self.settings = SimpleNamespace(concurrency=8)


async def test_stream_watchdog_reads_a_silent_partition_with_work_left_again_and_nothing_else() -> None:

    from faust.types import TP

    from yadtq_app.compat import StreamWatchdog

    stalled, busy, done, recent, changelog, fresh = (TP("tasks", 0), TP("tasks", 1), TP("events", 2),
                                                     TP("events", 3), TP("status-changelog", 0), TP("tasks", 5))
    ends = {stalled: 10, busy: 10, done: 7, recent: 9, changelog: 50, fresh: 4}
    consumer = StreamConsumer({stalled: 4, busy: 2, done: 7, recent: 3, changelog: 1}, ends)
    consumer._yadtq_floor[fresh] = 1  # nothing committed yet: reading began at 1
    consumer.processing.add((busy, 2))  # a message of it being processed: not a stall
    now = [100.0]
    app = StreamApp(consumer)
    dog = StreamWatchdog(app, stall=5.0, clock=lambda: now[0])
    await dog.check()
    assert consumer.seeks == []  # just assigned: every partition gets its time
    now[0] = 106.0
    consumer.delivered_at[recent] = 103.0
    app.stats.in_progress = 8  # every task slot taken: backpressure, never a stall
    await dog.check()
    assert consumer.seeks == []
    app.stats.in_progress = 3
    await dog.check()
    assert sorted(consumer.seeks) == sorted([(stalled, 4), (fresh, 1)])
    await dog.check()  # just sought: it gets its time
    assert len(consumer.seeks) == 2
    now[0] = 112.0  # still nothing delivered: again; `recent` is silent for 9 s by now
    await dog.check()
    assert sorted(consumer.seeks[2:]) == sorted([(stalled, 4), (recent, 3), (fresh, 1)])
    app.rebalancing = True  # never during a rebalance
    now[0] = 200.0
    await dog.check()
    assert len(consumer.seeks) == 5 and dog._kicked == {} and dog._since == {}


async def test_recovery_watchdog_resumes_faust_tps_whatever_recovery_keys_it_by() -> None:
    # Recovery's highwaters come from aiokafka's ListOffsets answer, keyed by aiokafka's
    # TopicPartition; Faust's consumer asserts its active partitions are TPs.
    from aiokafka import TopicPartition
    from faust.types import TP

    from yadtq_app.compat import RecoveryWatchdog

    stuck = TopicPartition("c", 0)
    recovery = FakeRecovery(5.0, {stuck: 20}, {stuck: 40})
    app = FakeApp(recovery)
    await RecoveryWatchdog(app, stall=3.0, give_up=60.0).check()
    assert app.consumer.resumed == [TP("c", 0)]
    assert all(type(tp) is TP for tp in app.consumer.resumed)
    assert all(type(tp) is TP for tp, _ in app.consumer.seeks)
