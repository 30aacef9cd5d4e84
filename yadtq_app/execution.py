"""Run one task: argument check, time limit, sync functions off the loop, error capture.

:func:`run_task` never raises (except ``CancelledError`` when its caller is cancelled):
whatever the task body does becomes an :class:`Outcome`. This matters because an
exception escaping a Faust agent is logged, the message is acked anyway and the task
would be lost (see the broker notes in the README).

Where a task runs, and what its time limit can do to it:

* ``async def`` — on the worker's event loop; at the limit it is cancelled.
* plain ``def`` — in the worker's threads (:class:`ThreadRunner`). Python cannot stop
  a thread: at the limit the task is recorded ``failed`` and its thread is abandoned
  to finish on its own (it still holds a pool thread until then).
* ``@task(process=True)`` — in the worker's process pool (:class:`ProcessRunner`, on
  `pebble <https://pypi.org/project/Pebble/>`_): at the limit, or on cancel, the
  process running it is killed and replaced, so a CPU-bound task that ignores its
  limit cannot stall the worker. Arguments and results cross to it as JSON text.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import importlib
import json
import logging
import multiprocessing
import queue
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Optional

import pebble

from .context import TaskContext, _current
from .errors import Retry, TimeLimitExceeded
from .registry import TaskDef

__all__ = ["Outcome", "run_task", "error_info", "ThreadRunner", "ProcessRunner", "NOT_RETRYABLE"]

logger = logging.getLogger(__name__)

#: Failures that would fail again the same way: never retried.
NOT_RETRYABLE = frozenset({"InvalidArguments", "ResultNotSerializable", "ResultTooLarge"})

#: Bounds on an error's text in status rows and events (characters): a message's head,
#: a traceback's tail (its last frames say where it failed).
MAX_ERROR_MESSAGE = 4_000
MAX_TRACEBACK = 16_000
MAX_TRACEBACK_LINE = 1_000


@dataclass(frozen=True)
class Outcome:
    """What running a task came to: a JSON-safe result, or an error description.

    ``error_types`` are the qualified names of the exception's classes (its MRO), for
    matching ``retry_on``; ``retry`` is set when the body raised :class:`Retry`, with
    its ``retry_delay``.
    """

    ok: bool
    result: Any = None
    error: Optional[dict[str, Any]] = None
    error_types: tuple[str, ...] = ()
    retry: bool = False
    retry_delay: Optional[float] = None

    @property
    def retryable(self) -> bool:
        return not self.ok and (self.error or {}).get("type") not in NOT_RETRYABLE


def error_info(exc: BaseException, *, with_traceback: bool = True) -> dict[str, Any]:
    """An exception as JSON-safe data: ``type``, ``message``, ``traceback``."""
    tb = None
    if with_traceback:
        # Each line bounded (the exception's own line repeats its message), then the
        # whole: its last frames say where it failed.
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        tb = clip_tail("".join(clip_head(line, MAX_TRACEBACK_LINE) for line in lines), MAX_TRACEBACK)
    return {"type": type(exc).__name__[:200], "message": clip_head(_message(exc), MAX_ERROR_MESSAGE),
            "traceback": tb}


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception as inner:  # noqa: BLE001 - a task's exception whose __str__ fails
        return f"<unprintable {type(exc).__name__}: {type(inner).__name__}>"


def clip_head(text: str, limit: int) -> str:
    """``text``, or its first ``limit`` characters and a note of how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"


def clip_tail(text: str, limit: int) -> str:
    """``text``, or its last ``limit`` characters after a note of how much was cut."""
    if len(text) <= limit:
        return text
    return f"[{len(text) - limit} characters before]…{text[-limit:]}"


def _type_names(exc: BaseException) -> tuple[str, ...]:
    return tuple(f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__ if c is not object)


def _failure(exc: BaseException, *, with_traceback: bool = True) -> Outcome:
    if isinstance(exc, Retry):
        return Outcome(ok=False, error=error_info(exc, with_traceback=False), error_types=_type_names(exc),
                       retry=True, retry_delay=exc.delay)
    return Outcome(ok=False, error=error_info(exc, with_traceback=with_traceback), error_types=_type_names(exc))


def _time_limit(taskdef: TaskDef, timeout: float) -> Outcome:
    exc = TimeLimitExceeded(f"{taskdef.name} exceeded its time limit of {timeout:g} s")
    return Outcome(ok=False, error=error_info(exc, with_traceback=False), error_types=_type_names(exc))


async def run_task(taskdef: TaskDef, args: list[Any], kwargs: dict[str, Any], *,
                   timeout: float, threads: Optional["ThreadRunner"] = None,
                   context: Optional[TaskContext] = None, processes: Optional["ProcessRunner"] = None,
                   max_result_bytes: Optional[int] = None) -> Outcome:
    """Run ``taskdef`` with these arguments under ``timeout`` seconds.

    ``context`` is what :func:`yadtq_app.current_task` returns inside the task;
    ``threads`` runs plain ``def`` tasks (a shared default :class:`ThreadRunner` if ``None``);
    ``processes`` runs ``process=True`` tasks (required for them). A result that is not
    JSON, or whose JSON is over ``max_result_bytes``, is a failure
    (``ResultNotSerializable``, ``ResultTooLarge``; neither is retried).
    """
    token = _current.set(context)
    try:
        outcome = await _run(taskdef, args, kwargs, timeout=timeout, threads=threads, context=context,
                             processes=processes)
    finally:
        _current.reset(token)
    if outcome.ok:
        return _checked_result(taskdef.name, outcome.result, max_result_bytes)
    return outcome


async def _run(taskdef: TaskDef, args: list[Any], kwargs: dict[str, Any], *,
               timeout: float, threads: Optional["ThreadRunner"], context: Optional[TaskContext],
               processes: Optional["ProcessRunner"]) -> Outcome:
    try:
        taskdef.check_arguments(args, kwargs)
    except TypeError as exc:
        return Outcome(ok=False, error={"type": "InvalidArguments", "message": f"{taskdef.name}: {exc}",
                                        "traceback": None})
    if taskdef.process:
        if processes is None:
            raise RuntimeError(f"task {taskdef.name} needs a process pool (process=True)")
        return await processes.run(taskdef, args, kwargs, timeout=timeout, context=context)
    try:
        if taskdef.is_async:
            result = await asyncio.wait_for(_shield_timeouts(taskdef.fn(*args, **kwargs)), timeout)
        else:
            runner = threads if threads is not None else _default_threads
            result = await asyncio.wait_for(runner.submit(_call_shielding_timeouts, taskdef.fn, args, kwargs),
                                            timeout)
    except _BodyTimeout as wrapped:
        return _failure(wrapped.original)
    except asyncio.TimeoutError:
        return _time_limit(taskdef, timeout)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - a task body's exception is the task's failure
        return _failure(exc)
    return Outcome(ok=True, result=result)


def _checked_result(name: str, result: Any, max_bytes: Optional[int]) -> Outcome:
    try:
        size = len(json.dumps(result, allow_nan=False))  # ASCII: characters are bytes
    except (TypeError, ValueError, RecursionError) as exc:
        return Outcome(ok=False, error={"type": "ResultNotSerializable",
                                        "message": clip_head(f"{name} returned a value that is not JSON: {exc}",
                                                             MAX_ERROR_MESSAGE),
                                        "traceback": None})
    if max_bytes is not None and size > max_bytes:
        return Outcome(ok=False, error={"type": "ResultTooLarge",
                                        "message": f"{name} returned {size} bytes of JSON, over the result "
                                                   f"limit of {max_bytes} (YADTQ_MAX_RESULT_BYTES)",
                                        "traceback": None})
    return Outcome(ok=True, result=result)


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
                if self._wake_pending:
                    continue  # the delivery already scheduled takes this one too
                self._wake_pending = True
            try:
                self.loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the loop is closed: nobody waits any more
                return

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
_default_threads = ThreadRunner(8, name="yadtq-default")


class ProcessRunner:
    """Runs ``process=True`` tasks in a pool of ``size`` spawned processes.

    A task that passes its time limit, or is cancelled, has its process killed (and
    the pool starts a fresh one). Processes are spawned, not forked: the worker has
    threads, an event loop and open RocksDB handles that a fork must not copy. The
    pool starts on first use.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._pool: Optional[pebble.ProcessPool] = None

    def _get_pool(self) -> pebble.ProcessPool:
        if self._pool is None:
            self._pool = pebble.ProcessPool(max_workers=self.size, context=multiprocessing.get_context("spawn"))
        return self._pool

    async def run(self, taskdef: TaskDef, args: list[Any], kwargs: dict[str, Any], *, timeout: float,
                  context: Optional[TaskContext] = None) -> Outcome:
        fn = taskdef.fn
        ctx = (context.id, context.name, context.attempt, context.worker, context.started_at) \
            if context is not None else None
        future = self._get_pool().schedule(
            _process_entry, args=(fn.__module__, fn.__qualname__, taskdef.name, json.dumps(args),
                                  json.dumps(kwargs), ctx), timeout=timeout)
        try:
            payload = await asyncio.wrap_future(future)
        except concurrent.futures.TimeoutError:
            logger.warning("task %s: process killed at its time limit of %g s", taskdef.name, timeout)
            return _time_limit(taskdef, timeout)
        except asyncio.CancelledError:
            future.cancel()  # kills the process if the task is running
            raise
        except pebble.ProcessExpired as exc:
            return Outcome(ok=False, error={"type": "ProcessDied", "traceback": None,
                                            "message": f"the process running {taskdef.name} died: {exc}"})
        except Exception as exc:  # noqa: BLE001 - e.g. the pool failed to start the process
            return _failure(exc)
        data = json.loads(payload)
        if data["ok"]:
            return Outcome(ok=True, result=data["result"])
        return Outcome(ok=False, error=data["error"], error_types=tuple(data["types"]), retry=data["retry"],
                       retry_delay=data["retry_delay"])

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()
            pool.join(timeout=5)


def _process_entry(module: str, qualname: str, name: str, args_json: str, kwargs_json: str,
                   ctx: Optional[tuple[str, str, int, str, float]]) -> str:
    """Runs in the pool's process: import the task by name, call it, answer in JSON text."""
    fn = getattr(importlib.import_module(module), qualname)
    if ctx is not None:
        _current.set(TaskContext(id=ctx[0], name=ctx[1], attempt=ctx[2], worker=ctx[3], started_at=ctx[4]))
    try:
        result = fn(*json.loads(args_json), **json.loads(kwargs_json))
    except Exception as exc:  # noqa: BLE001 - the task's failure, reported to the worker
        out = _failure(exc)
        return json.dumps({"ok": False, "error": out.error, "types": list(out.error_types), "retry": out.retry,
                           "retry_delay": out.retry_delay})
    checked = _checked_result(name, result, None)  # the size is checked in the worker
    if not checked.ok:
        return json.dumps({"ok": False, "error": checked.error, "types": [], "retry": False, "retry_delay": None})
    return json.dumps({"ok": True, "result": result}, allow_nan=False)


class _BodyTimeout(Exception):
    """A ``TimeoutError`` raised by the task body itself, not by yadtq's time limit.

    Since Python 3.11 ``asyncio.TimeoutError`` *is* ``TimeoutError``, so without this
    wrapper a socket timeout inside a task would read as the task's time limit.
    """

    def __init__(self, original: TimeoutError) -> None:
        super().__init__(str(original))
        self.original = original


async def _shield_timeouts(coro: Any) -> Any:
    try:
        return await coro
    except TimeoutError as exc:
        raise _BodyTimeout(exc) from exc


def _call_shielding_timeouts(fn: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    try:
        return fn(*args, **kwargs)
    except TimeoutError as exc:
        raise _BodyTimeout(exc) from exc
