"""Plain ``def`` tasks run in threads: :class:`ThreadRunner`.

Split from :mod:`yadtq_app.execution`, which decides what a call's time limit and
outcome are; here is only how a call reaches a thread and its result the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import queue
import threading
import time
from typing import Any, Callable, Iterable, Optional

__all__ = ["ThreadRunner", "default_threads"]


#: A call waiting for a thread: its future, the caller's context, the function, its arguments.
_Job = tuple["asyncio.Future[Any]", contextvars.Context, Callable[..., Any], tuple[Any, ...]]


class ThreadRunner:
    """Runs plain ``def`` tasks in ``size`` threads and hands their outcomes back to the
    event loop in batches.

    ``loop.run_in_executor`` wakes the loop once per call (a write to its self-pipe from
    the finishing thread, and a concurrent future chained to an asyncio one); with
    thousands of short tasks a second that hop cost a busy worker about a fifth of its
    CPU (bench/RESULTS.md). Here a finished call joins a batch, and the loop is woken
    only when no delivery is pending already, so one wake-up delivers every call
    finished meanwhile. Each call runs in a copy of the caller's context (so
    :func:`yadtq_app.current_task` works in the thread).

    For calls known to take microseconds, :meth:`wait` lets the event loop's thread
    block for them instead of going round its selector: the loop's thread and a pool
    thread then hand the GIL to each other once each way, where the trip through the
    selector also let the consumer's thread and the producer run in between, and cost
    a worker three times the context switches (bench/RESULTS.md, 2026-12-06).

    The threads are daemons, started on the first call: a thread abandoned at a task's
    time limit (Python cannot stop it) does not keep the worker from exiting.
    """

    def __init__(self, size: int, *, name: str = "yadtq-task") -> None:
        if size < 1:
            raise ValueError("a ThreadRunner needs at least one thread")
        self.size = size
        self.name = name
        self._pool: Optional[_ThreadPool] = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> "asyncio.Future[Any]":
        """Call ``fn(*args)`` in a thread; a future of the running loop, for its result."""
        loop = asyncio.get_running_loop()
        pool = self._pool
        if pool is None or pool.loop is not loop:
            if pool is not None:
                pool.close()
            pool = self._pool = _ThreadPool(loop, self.size, self.name)
        future = loop.create_future()
        pool.jobs.put((future, contextvars.copy_context(), fn, args))
        return future

    def wait(self, futures: Iterable["asyncio.Future[Any]"], timeout: float) -> bool:
        """Block the calling thread (the event loop's) until the calls of ``futures``
        (from :meth:`submit`) have finished in their threads, for at most ``timeout``
        seconds, then hand over every call finished by then, theirs or not. True if
        each of ``futures`` is done on return; the others are handed over as usual."""
        pool = self._pool
        if pool is None:
            return all(future.done() for future in futures)
        return pool.wait(futures, timeout)

    def close(self) -> None:
        """Let idle threads end; a thread still running a task ends after it (not waited for)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


class _ThreadPool:
    """A :class:`ThreadRunner`'s threads for one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int, name: str) -> None:
        self.loop = loop
        self.jobs: queue.SimpleQueue[Optional[_Job]] = queue.SimpleQueue()
        self._finished: collections.deque[tuple[asyncio.Future[Any], bool, Any]] = collections.deque()
        self._lock = threading.Lock()
        self._wake_pending = False
        #: Signalled for each call that finishes while the loop's thread is in :meth:`wait`.
        self._finishing = threading.Condition(self._lock)
        self._loop_waits = False
        self._size = size
        for i in range(size):
            threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True).start()

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            future, context, fn, args = job
            if future.cancelled():  # e.g. the time limit passed while it waited for a thread
                continue
            try:
                done = (future, True, context.run(fn, *args))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                done = (future, False, exc)
            with self._lock:
                self._finished.append(done)
                if self._loop_waits:
                    self._finishing.notify()
                    continue  # the loop's thread hands it over when its wait ends
                if self._wake_pending:
                    continue  # the delivery already scheduled takes this one too
                self._wake_pending = True
            try:
                self.loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the loop is closed: nobody waits any more
                return

    def wait(self, futures: Iterable["asyncio.Future[Any]"], timeout: float) -> bool:
        waited = {id(future) for future in futures if not future.done()}
        deadline = time.monotonic() + timeout
        with self._lock:
            self._loop_waits = True
            try:
                while True:
                    waited.difference_update(id(future) for future, _, _ in self._finished)
                    left = deadline - time.monotonic()
                    if not waited or left <= 0:
                        break
                    self._finishing.wait(left)
            finally:
                self._loop_waits = False
        self._deliver()
        return not waited

    def _deliver(self) -> None:
        with self._lock:
            self._wake_pending = False
            finished, self._finished = self._finished, collections.deque()
        for future, ok, value in finished:
            if future.done():
                continue  # cancelled: the caller gave up on it (a time limit, a cancel)
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def close(self) -> None:
        for _ in range(self._size):
            self.jobs.put(None)


#: Runs plain ``def`` tasks for callers that pass no runner of their own.
default_threads = ThreadRunner(8, name="yadtq-default")
