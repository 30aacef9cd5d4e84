"""Run a mode ``QueueServiceThread`` on the app's own event loop instead of a thread.

Faust runs aiokafka's consumer in a thread of its own (``ConsumerThread``, a mode
``QueueServiceThread``): every fetch answer and every call into the consumer crosses
between two threads and two event loops, and each crossing waits for the GIL while
the other thread runs on. :class:`InLoop`, mixed in before the thread class, keeps
Faust's class and its remedies but serves it as a task of the app's loop: calls into
it are plain awaits, and no second loop wakes up at rest. Why: ``docs/brokers.md``,
"The consumer".
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Optional

from mode import Service
from mode.utils.futures import maybe_async

from . import private

__all__ = ["InLoop"]


class _LoopRunner:
    """Stands in for mode's ``WorkerThread``: serves the service as a task of its
    parent loop. ``stop`` does not wait (mode calls it synchronously); the service
    awaits :attr:`task` itself (:meth:`InLoop.stop`)."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.task: Optional[asyncio.Future[None]] = None

    def start(self) -> None:
        self.task = asyncio.ensure_future(private.serve_service_thread(self.service),
                                          loop=self.service.parent_loop)
        self.task.add_done_callback(_seen)

    def stop(self) -> None:
        """Nothing: see the class docs."""

    def is_alive(self) -> bool:
        return self.task is not None and not self.task.done()


def _seen(task: "asyncio.Future[None]") -> None:
    """Mark a crash of the service's task as retrieved: mode has reported it already
    (``ServiceThread._serve`` logs it and crashes the app), as a thread's would be."""
    if not task.cancelled():
        task.exception()


class InLoop:
    """Mix-in for a mode ``QueueServiceThread`` subclass (put it first): the service
    runs on the loop it is given (``loop=``), not in a thread. Pass no ``thread_loop``;
    it is the same loop."""

    Worker: Any = _LoopRunner  # mode's type says a WorkerThread: this stands in for one

    def __init__(self, *args: Any, loop: Optional[asyncio.AbstractEventLoop] = None, **kwargs: Any) -> None:
        loop = loop or asyncio.get_event_loop_policy().get_event_loop()
        #: Calls :meth:`cast_thread` started and that have not ended (held, or the loop
        #: keeps only a weak reference to them).
        self._casts: set[asyncio.Future[Any]] = set()
        super().__init__(*args, loop=loop, thread_loop=loop, **kwargs)  # type: ignore[call-arg]

    async def call_thread(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fun`` here (awaiting what it returns if awaitable): there is no other
        thread to hand it to."""
        return await maybe_async(fun(*args, **kwargs))

    async def cast_thread(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Start ``fun`` as a task of this loop and return."""
        task = asyncio.ensure_future(maybe_async(fun(*args, **kwargs)))
        self._casts.add(task)
        task.add_done_callback(self._casts.discard)

    async def on_thread_started(self) -> None:
        """Nothing: calls need no method queue (mode starts one for a thread)."""

    async def stop(self) -> None:
        """mode's stop, then wait until the service's task has shut it down."""
        await super().stop()  # type: ignore[misc]
        runner = private.service_thread_runner(self)
        task = runner.task if isinstance(runner, _LoopRunner) else None
        if task is not None and task is not asyncio.current_task():
            await asyncio.wait({task})  # a crash was reported by mode when it happened

    async def _gather_remaining_tasks(self) -> None:
        """Nothing: every other task of this loop is the app's (mode's cancels them
        all, which is right for a thread's own loop only)."""

    async def _keepalive2(self) -> None:
        """Nothing: mode's keeps a thread's loop from sleeping on a method queue."""

    @Service.task
    async def _thread_keepalive(self) -> None:
        """Nothing: as :meth:`_keepalive2`."""
