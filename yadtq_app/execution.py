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
import concurrent.futures
import importlib
import json
import logging
import multiprocessing
import time
import traceback
from dataclasses import dataclass
from typing import Any, Optional

import pebble

from .context import TaskContext, _current
from .errors import Retry, TimeLimitExceeded
from .registry import TaskDef
from .threads import ThreadRunner, default_threads

__all__ = ["Outcome", "run_task", "start_in_thread", "is_quick", "mark_slow", "QUICK_CALL",
           "outcome_of", "time_limit", "invalid_arguments", "error_info",
           "ThreadRunner", "ProcessRunner", "NOT_RETRYABLE"]

logger = logging.getLogger(__name__)

#: ``json.dumps(value, allow_nan=False)`` as one encoder (``json.dumps`` with an option
#: builds a new encoder for every call).
_STRICT_JSON = json.JSONEncoder(allow_nan=False)

#: Failures that would fail again the same way: never retried.
NOT_RETRYABLE = frozenset({"InvalidArguments", "ResultNotSerializable", "ResultTooLarge"})

#: Bounds on an error's text in status rows and events (characters): a message's head,
#: a traceback's tail (its last frames say where it failed).
MAX_ERROR_MESSAGE = 4_000
MAX_TRACEBACK = 16_000
MAX_TRACEBACK_LINE = 1_000
#: The longest a plain ``def`` task's call in a thread may take for the task to count as
#: quick (s): the worker then waits for a wave of its calls on the spot
#: (``agents.batch_run``, :meth:`ThreadRunner.wait`).
QUICK_CALL = 0.0001

#: The names of the plain ``def`` tasks that are not quick now (see :func:`is_quick`);
#: written from the pool threads (a set's ``add`` and ``discard`` are atomic).
_slow: set[str] = set()


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


def time_limit(taskdef: TaskDef, timeout: float) -> Outcome:
    """The outcome of an attempt of ``taskdef`` stopped at its time limit of ``timeout`` s."""
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
        return invalid_arguments(taskdef, exc)
    if taskdef.process:
        if processes is None:
            raise RuntimeError(f"task {taskdef.name} needs a process pool (process=True)")
        return await processes.run(taskdef, args, kwargs, timeout=timeout, context=context)
    try:
        if taskdef.is_async:
            result = await asyncio.wait_for(_shield_timeouts(taskdef.fn(*args, **kwargs)), timeout)
        else:
            runner = threads if threads is not None else default_threads
            result = await asyncio.wait_for(runner.submit(_call_timed, taskdef, args, kwargs), timeout)
    except _BodyTimeout as wrapped:
        return _failure(wrapped.original)
    except asyncio.TimeoutError:
        return time_limit(taskdef, timeout)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - a task body's exception is the task's failure
        return _failure(exc)
    return Outcome(ok=True, result=result)


def invalid_arguments(taskdef: TaskDef, exc: TypeError) -> Outcome:
    """The outcome of an attempt whose arguments do not fit ``taskdef``'s signature."""
    return Outcome(ok=False, error={"type": "InvalidArguments", "message": f"{taskdef.name}: {exc}", "traceback": None})


def start_in_thread(taskdef: TaskDef, args: list[Any], kwargs: dict[str, Any], *, threads: "ThreadRunner",
                    context: Optional[TaskContext]) -> "asyncio.Future[Any]":
    """Start plain ``def`` task ``taskdef`` in ``threads``, ``context`` being its
    :func:`~yadtq_app.current_task`; the future of its return value (read it with
    :func:`outcome_of`). Raises ``TypeError`` if the arguments do not fit.
    """
    taskdef.check_arguments(args, kwargs)
    token = _current.set(context)
    try:
        return threads.submit(_call_timed, taskdef, args, kwargs)
    finally:
        _current.reset(token)


def is_quick(taskdef: TaskDef) -> bool:
    """Whether plain ``def`` task ``taskdef`` counts as quick: its last call in a
    thread (:func:`start_in_thread`, :func:`run_task`) took at most :data:`QUICK_CALL`, or
    it has not run here yet, and no wait for a call of it has ended first
    (:func:`mark_slow`)."""
    return taskdef.name not in _slow


def mark_slow(taskdef: TaskDef) -> None:
    """Count ``taskdef`` as slow until one of its calls is quick again."""
    _slow.add(taskdef.name)


def outcome_of(taskdef: TaskDef, future: "asyncio.Future[Any]", *, max_result_bytes: Optional[int]) -> Outcome:
    """What a call :func:`start_in_thread` started came to, as :func:`run_task` reports
    it; ``future`` must be done and not cancelled."""
    exc = future.exception()
    if exc is None:
        return _checked_result(taskdef.name, future.result(), max_result_bytes)
    if isinstance(exc, _BodyTimeout):
        return _failure(exc.original)
    if isinstance(exc, Exception):
        return _failure(exc)
    raise exc


def _checked_result(name: str, result: Any, max_bytes: Optional[int]) -> Outcome:
    try:
        size = len(_STRICT_JSON.encode(result))  # ASCII: characters are bytes
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
            return time_limit(taskdef, timeout)
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
    return _STRICT_JSON.encode({"ok": True, "result": result})


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


def _call_timed(taskdef: TaskDef, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Call ``taskdef`` in a pool thread (every plain ``def`` task's call), and note
    whether the call was quick (:func:`is_quick`). Raises what the task raises, a
    ``TimeoutError`` of its own wrapped in ``_BodyTimeout`` (not the attempt's time limit)."""
    started = time.perf_counter()
    try:
        return taskdef.fn(*args, **kwargs)
    except TimeoutError as exc:
        raise _BodyTimeout(exc) from exc
    finally:
        if time.perf_counter() - started > QUICK_CALL:
            _slow.add(taskdef.name)
        else:
            _slow.discard(taskdef.name)
