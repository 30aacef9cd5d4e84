"""FreezeGuard: a frozen worker keeps its hands off until the group has decided."""

from __future__ import annotations

from yadtq_app.fencing import FreezeGuard


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


def test_closed_after_a_freeze_until_reassigned() -> None:
    clock = Clock()
    g = FreezeGuard(threshold=1.5, hold=6.0, clock=clock)
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
    clock.now += 2.0
    assert not g.is_open()
    for _ in range(59):
        clock.now += 0.1
        assert not g.is_open()
    clock.now += 0.2
    assert g.is_open()


def test_a_freeze_noticed_by_any_caller_closes_for_all() -> None:
    clock = Clock()
    g = FreezeGuard(threshold=1.5, hold=6.0, clock=clock)
    clock.now += 5.0
    g.tick()  # the timer notices first
    assert not g.is_open()  # an agent asking right after is refused too
