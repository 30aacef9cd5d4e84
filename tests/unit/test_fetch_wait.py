"""The fetch wait's choice between its busy and idle waits."""

from __future__ import annotations

import time


def test_fetch_wait_is_busy_for_a_while_after_work() -> None:
    from yadtq_app.kafka.fetch_wait import FetchWait

    wait = FetchWait(10, 3, hold=0.5)
    assert wait.current() == 10  # nothing seen yet
    now = time.monotonic()
    wait.last_work = now
    assert wait.current() == 3
    wait.last_work = now - 0.6  # the last message came longer ago than the hold
    assert wait.current() == 10
