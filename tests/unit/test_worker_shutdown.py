"""The worker's last run of its event loop at a stop: as long as tasks are left, at most a second."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Coroutine

from yadtq_app.faust_worker import Worker


def _last_run(left: Callable[[], Coroutine[Any, Any, None]]) -> float:
    """Seconds the worker's last run takes in a loop of its own holding a task ``left``
    (run as mode's worker runs it, alone on the loop after every other task ended)."""
    loop = asyncio.new_event_loop()
    try:
        leftover = loop.create_task(left())
        began = time.monotonic()
        loop.run_until_complete(Worker._sentinel_task(None))  # type: ignore[arg-type]  # uses no state
        took = time.monotonic() - began
        leftover.cancel()
        loop.run_until_complete(asyncio.gather(leftover, return_exceptions=True))
        return took
    finally:
        loop.close()


def test_with_nothing_left_the_loop_closes_at_once() -> None:
    async def nothing() -> None:
        return None

    assert _last_run(nothing) < 0.5  # mode's own sleeps a second here on every stop


def test_tasks_left_by_the_stop_end_before_the_loop_closes() -> None:
    ended: list[bool] = []

    async def closing() -> None:
        await asyncio.sleep(0.05)
        ended.append(True)

    _last_run(closing)
    assert ended == [True]


def test_a_task_that_never_ends_does_not_hold_the_stop() -> None:
    async def never() -> None:
        await asyncio.Event().wait()

    assert 0.9 <= _last_run(never) < 5
