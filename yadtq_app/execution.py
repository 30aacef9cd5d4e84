"""Run one task: argument check, time limit, sync functions off the loop, error capture.

:func:`run_task` never raises (except ``CancelledError`` when its caller is cancelled):
whatever the task body does becomes an :class:`Outcome`. This matters because an
exception escaping a Faust agent is logged, the message is acked anyway and the task
would be lost (see the broker notes in the README).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import traceback
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Optional

from .context import TaskContext, _current
from .registry import TaskDef

__all__ = ["Outcome", "run_task", "error_info"]


@dataclass(frozen=True)
class Outcome:
    """What running a task came to: a JSON-safe result, or an error description."""

    ok: bool
    result: Any = None
    error: Optional[dict[str, Any]] = None


def error_info(exc: BaseException, *, with_traceback: bool = True) -> dict[str, Any]:
    """An exception as JSON-safe data: ``type``, ``message``, ``traceback``."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)) if with_traceback else None
    return {"type": type(exc).__name__, "message": str(exc), "traceback": tb}


async def run_task(taskdef: TaskDef, args: list[Any], kwargs: dict[str, Any], *,
                   timeout: float, executor: Optional[Executor] = None,
                   context: Optional[TaskContext] = None) -> Outcome:
    """Run ``taskdef`` with these arguments under ``timeout`` seconds.

    ``context`` is what :func:`yadtq_app.current_task` returns inside the task.
    """
    token = _current.set(context)
    try:
        return await _run(taskdef, args, kwargs, timeout=timeout, executor=executor)
    finally:
        _current.reset(token)


async def _run(taskdef: TaskDef, args: list[Any], kwargs: dict[str, Any], *,
               timeout: float, executor: Optional[Executor]) -> Outcome:
    try:
        taskdef.check_arguments(args, kwargs)
    except TypeError as exc:
        return Outcome(ok=False, error={"type": "InvalidArguments", "message": f"{taskdef.name}: {exc}",
                                        "traceback": None})
    try:
        if taskdef.is_async:
            result = await asyncio.wait_for(_shield_timeouts(taskdef.fn(*args, **kwargs)), timeout)
        else:
            loop = asyncio.get_running_loop()
            # run_in_executor does not carry context variables into the thread; copy them.
            call = functools.partial(contextvars.copy_context().run, _call_shielding_timeouts, taskdef.fn,
                                     args, kwargs)
            result = await asyncio.wait_for(loop.run_in_executor(executor, call), timeout)
    except _BodyTimeout as wrapped:
        exc = wrapped.original
        return Outcome(ok=False, error=error_info(exc))
    except asyncio.TimeoutError:
        return Outcome(ok=False, error={"type": "TaskTimeout",
                                        "message": f"{taskdef.name} exceeded its time limit of {timeout:g} s",
                                        "traceback": None})
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - a task body's exception is the task's failure
        return Outcome(ok=False, error=error_info(exc))
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return Outcome(ok=False, error={"type": "ResultNotSerializable",
                                        "message": f"{taskdef.name} returned a value that is not JSON: {exc}",
                                        "traceback": None})
    return Outcome(ok=True, result=result)


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
