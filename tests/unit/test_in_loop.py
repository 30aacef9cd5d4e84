"""InLoop: a mode QueueServiceThread served on the loop it is given, in no thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Optional

import pytest
from mode import Service
from mode.threads import QueueServiceThread

from yadtq_app.kafka import private
from yadtq_app.kafka.in_loop import InLoop


class Probe(InLoop, QueueServiceThread):
    """Records where it started and whether its thread-side stop ran."""

    started_in: Optional[int] = None
    stopped_in: Optional[int] = None

    async def on_start(self) -> None:
        self.started_in = threading.get_ident()

    async def on_thread_stop(self) -> None:
        await super().on_thread_stop()
        self.stopped_in = threading.get_ident()

    @Service.task
    async def _slow_to_cancel(self) -> None:
        """A background task whose cancellation takes a while (mode cancels these
        after it has told the parent that the service shut down)."""
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)
            raise


async def test_the_service_starts_calls_and_stops_on_the_callers_thread() -> None:
    threads = threading.active_count()
    probe = Probe(loop=asyncio.get_running_loop())
    await probe.start()
    assert probe.started_in == threading.get_ident()
    assert threading.active_count() == threads

    async def where(x: int) -> tuple[int, int]:
        return threading.get_ident(), x

    assert await probe.call_thread(where, 3) == (threading.get_ident(), 3)
    assert await probe.call_thread(lambda: 7) == 7  # a plain function, as mode allows

    await probe.stop()
    assert probe.stopped_in == threading.get_ident()
    assert not private.service_thread_runner(probe).is_alive()  # stopped as a joined thread is


async def test_a_stop_leaves_the_loops_other_tasks_running() -> None:
    """mode's thread cancels every task of its loop when it shuts down: here the loop is
    the app's, and its tasks are not the service's."""
    probe = Probe(loop=asyncio.get_running_loop())
    await probe.start()
    bystander: asyncio.Future[Any] = asyncio.ensure_future(asyncio.sleep(10))
    try:
        await probe.stop()
        await asyncio.sleep(0)
        assert not bystander.cancelled() and not bystander.done()
    finally:
        bystander.cancel()


async def test_cast_thread_runs_the_call_later() -> None:
    probe = Probe(loop=asyncio.get_running_loop())
    await probe.start()
    done = asyncio.Event()

    async def mark() -> None:
        done.set()

    try:
        await probe.cast_thread(mark)
        await asyncio.wait_for(done.wait(), 5)
    finally:
        await probe.stop()


class Failing(InLoop, QueueServiceThread):
    """Fails to start, as a consumer that cannot reach its broker does."""

    async def on_start(self) -> None:
        raise ConnectionError("no broker")

    def on_crash(self, msg: str, *fmt: Any, **kwargs: Any) -> None:
        """Quiet (mode prints the traceback to stderr)."""


async def test_a_service_that_fails_to_start_raises_at_start_and_stops_quietly() -> None:
    failing = Failing(loop=asyncio.get_running_loop())
    with pytest.raises(ConnectionError):
        await failing.start()
    await failing.stop()  # does not raise the crash again
    runner = private.service_thread_runner(failing)
    assert runner.task.done() and not runner.is_alive()
    # mode reported the crash: asyncio must not log "Task exception was never retrieved"
    # when the task is collected (its flag for that; set if nobody took the exception).
    assert not runner.task._log_traceback
