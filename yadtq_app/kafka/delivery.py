"""A message's delivery to the agents without two tasks per message.

Faust's drain loop (``Consumer._drain_messages``) hands each fetched message to the
agents' queues with ``await self.wait_first(callback(message), self.suspend_flow.wait())``:
the delivery raced against a flow suspension (a rebalance). ``mode``'s ``wait_first``
runs each in a task of its own, with two more for the consumer's stop and crash, and
waits on all four: four tasks and a turn of the event loop per message, though the
delivery almost never waits (it decodes the message and puts it in a queue with room).
The agents' streams then wake once per message, and the task agent reads batches of one.

:func:`deliver_first` is the consumer's ``wait_first`` for that one call: it starts the
delivery inline and, if it ends without waiting, that is all; a delivery that must wait
(a full queue, flow control) goes on racing the suspension as Faust does. That call's
shape is checked on the pinned Faust by ``tests/unit/test_delivery.py``: an upgrade that
changes it fails a test instead of putting every message back on the slow path.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Coroutine, Generator, Optional

from mode.services import WaitResults

__all__ = ["deliver_first"]


async def deliver_first(delivery: Coroutine[Any, Any, Any], suspended: Coroutine[Any, Any, Any],
                        race: Callable[[Awaitable[Any], Awaitable[Any]], Awaitable[WaitResults]]) -> WaitResults:
    """Run ``delivery`` inline until it ends or must wait; in the second case, finish it
    with ``race`` (the consumer's own ``wait_first``) against ``suspended``. Returns
    what ``wait_first`` returns."""
    try:
        step = delivery.send(None)
    except StopIteration as done:
        suspended.close()
        return WaitResults([delivery], [done.value], False)
    except BaseException:
        suspended.close()
        raise
    return await race(_Resumed(delivery, step), suspended)


class _Resumed:
    """Awaiting it goes on with a coroutine from where its first ``send`` left it."""

    def __init__(self, coro: Coroutine[Any, Any, Any], step: Any) -> None:
        self.coro = coro
        self.step: Optional[Any] = step

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, step = self.coro, self.step
        try:
            while True:
                try:
                    value = yield step
                except GeneratorExit:
                    coro.close()
                    raise
                except BaseException as exc:  # noqa: BLE001 - e.g. CancelledError: the coroutine's to handle
                    step = coro.throw(exc)
                else:
                    step = coro.send(value)
        except StopIteration as stop:
            return stop.value


def is_suspension_wait(awaitable: Any, event: asyncio.Event) -> bool:
    """Whether ``awaitable`` is ``event.wait()``, not started (the drain loop's second argument)."""
    frame = getattr(awaitable, "cr_frame", None)
    return (asyncio.iscoroutine(awaitable) and frame is not None and frame.f_locals.get("self") is event
            and getattr(awaitable, "cr_code", None) is asyncio.Event.wait.__code__)
