"""The recovery and stream watchdogs, on fakes of what they read."""

from __future__ import annotations

from typing import Any


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

    from yadtq_app.kafka.watchdogs import RecoveryWatchdog

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
        self.finished_at: dict[Any, float] = {}
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

    from yadtq_app.kafka.watchdogs import StreamWatchdog

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


async def test_stream_watchdog_leaves_a_partition_whose_last_task_just_finished() -> None:
    # A task that ran longer than the stall, last of its partition: once it is acked the
    # partition is neither busy nor committed to its end until the next commit.
    from faust.types import TP

    from yadtq_app.kafka.watchdogs import StreamWatchdog

    long_task = TP("tasks", 0)
    consumer = StreamConsumer({long_task: 3}, {long_task: 4})
    now = [100.0]
    dog = StreamWatchdog(StreamApp(consumer), stall=5.0, clock=lambda: now[0])
    consumer.delivered_at[long_task] = 100.0
    consumer.processing.add((long_task, 3))
    await dog.check()
    now[0] = 160.0  # it ran for a minute, and has just finished
    consumer.processing.clear()
    consumer.finished_at[long_task] = 159.5
    await dog.check()
    assert consumer.seeks == []
    now[0] = 165.0  # finished 5.5 s ago and still not committed: read it again
    await dog.check()
    assert consumer.seeks == [(long_task, 3)]


async def test_recovery_watchdog_resumes_faust_tps_whatever_recovery_keys_it_by() -> None:
    # Recovery's highwaters come from aiokafka's ListOffsets answer, keyed by aiokafka's
    # TopicPartition; Faust's consumer asserts its active partitions are TPs.
    from aiokafka import TopicPartition
    from faust.types import TP

    from yadtq_app.kafka.watchdogs import RecoveryWatchdog

    stuck = TopicPartition("c", 0)
    recovery = FakeRecovery(5.0, {stuck: 20}, {stuck: 40})
    app = FakeApp(recovery)
    await RecoveryWatchdog(app, stall=3.0, give_up=60.0).check()
    assert app.consumer.resumed == [TP("c", 0)]
    assert all(type(tp) is TP for tp in app.consumer.resumed)
    assert all(type(tp) is TP for tp, _ in app.consumer.seeks)
