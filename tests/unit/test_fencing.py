"""FreezeGuard: a frozen worker keeps its hands off until the group has decided."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Optional

from faust.types import TP

from yadtq_app.fencing import FencedTable, FreezeGuard, contiguous


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_open_while_ticking_regularly() -> None:
    clock = Clock()
    g = FreezeGuard(threshold=1.5, hold=6.0, clock=clock)
    for _ in range(100):
        clock.now += 0.1
        assert g.is_open()
    assert g.freezes == 0


def test_ticking_at_its_interval_tolerates_lag_of_most_of_the_threshold() -> None:
    for threshold in (1.0, 1.5, 22.5):
        clock = Clock()
        g = FreezeGuard(threshold=threshold, hold=6.0, clock=clock)
        assert g.tick_interval <= 1.0
        for _ in range(20):
            clock.now += g.tick_interval + 0.85 * threshold  # the loop busy for 85 % of it
            assert g.is_open(), threshold
        assert g.freezes == 0


def test_closed_after_a_freeze_until_reassigned() -> None:
    clock = Clock()
    g = FreezeGuard(threshold=1.5, hold=6.0, clock=clock)
    g.tick()  # the timer's first tick starts the watch
    clock.now += 10.0  # SIGSTOP for 10 s
    assert not g.is_open()
    assert g.freezes == 1
    clock.now += 1.0
    assert not g.is_open()
    g.on_assigned()
    assert g.is_open()


def test_reopens_after_hold_without_a_rebalance() -> None:
    clock = Clock()
    g = FreezeGuard(threshold=1.5, hold=6.0, clock=clock)
    g.tick()
    clock.now += 2.0
    assert not g.is_open()
    for _ in range(59):
        clock.now += 0.1
        assert not g.is_open()
    clock.now += 0.2
    assert g.is_open()


def test_the_watch_starts_at_the_first_tick_not_at_the_first_assignment() -> None:
    # A new worker is assigned partitions and recovers its tables before Faust starts
    # its timers: that time is no freeze.
    clock = Clock()
    g = FreezeGuard(threshold=1.0, hold=4.0, clock=clock)
    clock.now += 3.0  # the worker starts
    g.on_assigned()
    clock.now += 1.2  # table recovery; no timer yet
    assert g.is_open() and g.freezes == 0
    clock.now += 1.2  # from then on, a gap is a freeze
    assert not g.is_open() and g.freezes == 1
    g.on_assigned()
    clock.now += 0.1
    assert g.is_open()


def test_a_freeze_noticed_by_any_caller_closes_for_all() -> None:
    clock = Clock()
    g = FreezeGuard(threshold=1.5, hold=6.0, clock=clock)
    g.tick()
    clock.now += 5.0
    g.tick()  # the timer notices first
    assert not g.is_open()  # an agent asking right after is refused too


# -- FencedTable: a stale write landing late must not move the persisted offset --------


class Offsets:
    """Stands in for the table's store: only the persisted offsets, per partition."""

    def __init__(self) -> None:
        self.persisted: dict[Any, int] = {}

    def persisted_offset(self, tp: Any) -> Optional[int]:
        return self.persisted.get(tp)

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        self.persisted[tp] = offset


class Sent:
    """A changelog send that has completed at ``offset``."""

    def __init__(self, tp: TP, offset: int) -> None:
        self.meta = SimpleNamespace(topic_partition=tp, offset=offset)

    def result(self) -> Any:
        return self.meta


def test_contiguous() -> None:
    assert contiguous(None, 0)
    assert not contiguous(None, 3)
    assert contiguous(7, 8)
    assert not contiguous(7, 7)
    assert not contiguous(7, 12)


def test_fenced_table_keeps_the_persisted_offset_below_a_gap(monkeypatch: Any) -> None:
    from yadtq_app.tables.schedule import task_schedule

    assert isinstance(task_schedule, FencedTable)
    offsets = Offsets()
    monkeypatch.setattr(task_schedule, "_data", offsets)
    tp = TP(task_schedule.changelog_topic.get_topic_name(), 3)
    for offset in (0, 1, 2):  # the owner's own writes
        task_schedule._on_changelog_sent(Sent(tp, offset))
    assert offsets.persisted[tp] == 2
    # Another worker wrote offsets 3 and 4 (this store never applied them); ours land after.
    task_schedule._on_changelog_sent(Sent(tp, 5))
    task_schedule._on_changelog_sent(Sent(tp, 6))
    assert offsets.persisted[tp] == 2, "the next recovery must replay 3 and 4"
    # Recovery replays up to the end (Faust sets the persisted offset as it applies).
    offsets.set_persisted_offset(tp, 6)
    task_schedule._on_changelog_sent(Sent(tp, 7))
    assert offsets.persisted[tp] == 7
