"""A producer linger that ends when the event loop goes idle.

With a linger of 0 (Faust's default) aiokafka sends a produce request as soon as its
sender task runs, so a busy worker sends about one request per record: its status
changelog, events and heartbeats. On loopback the sending thread pays for each request
in the kernel, and the broker for each again. A linger lets records share requests,
but holds a lone record back for the whole linger: a submission over HTTP, a cancel,
the next task of an ordering key, each of which someone waits for.

:class:`Producer` keeps the linger only while the event loop has work queued: the
moment the loop is about to wait for I/O, every batch still open is sent
(:func:`send_when_idle`). A busy worker batches what it writes in one stretch of work;
an idle one sends at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Optional

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka

from . import private

__all__ = ["Producer", "send_when_idle"]

logger = logging.getLogger(__name__)


class _IdleSend:
    """The selector's ``select``, sending lingering batches before it would block."""

    __slots__ = ("select", "accumulators")

    def __init__(self, select: Callable[..., Any]) -> None:
        self.select = select
        self.accumulators: list[Any] = []

    def __call__(self, timeout: Optional[float] = None) -> Any:
        if timeout is None or timeout > 0:
            sent = False
            for accumulator in self.accumulators:
                sent = private.send_lingering(accumulator) or sent
            if sent:
                timeout = 0  # the sender is ready to run: look for I/O, do not wait for it
        return self.select(timeout)


def send_when_idle(loop: asyncio.AbstractEventLoop, kafka: aiokafka.AIOKafkaProducer) -> Optional[Callable[[], None]]:
    """Send ``kafka``'s lingering batches whenever ``loop`` is about to wait for I/O.

    Returns a function that undoes it for this producer, or ``None`` (and the linger
    stays a plain linger) if ``loop`` is not a selector event loop.
    """
    selector = private.loop_selector(loop)
    if selector is None:
        logger.warning("the event loop %r has no selector: the producer's linger is not cut short when idle",
                       type(loop).__name__)
        return None
    idle = selector.select
    if not isinstance(idle, _IdleSend):
        idle = _IdleSend(selector.select)
        selector.select = idle  # type: ignore[method-assign]
    accumulator = private.producer_accumulator(kafka)
    idle.accumulators.append(accumulator)
    accumulators = idle.accumulators

    def undo() -> None:
        if accumulator in accumulators:
            accumulators.remove(accumulator)

    return undo


class Producer(faust_aiokafka.Producer):
    """Faust's aiokafka producer whose linger ends when the event loop goes idle."""

    _undo_idle_send: Optional[Callable[[], None]] = None

    async def on_start(self) -> None:
        await super().on_start()
        if self.linger_ms > 0:
            self._undo_idle_send = send_when_idle(asyncio.get_running_loop(), private.ensure_producer(self))

    async def on_stop(self) -> None:
        if self._undo_idle_send is not None:
            self._undo_idle_send()
            self._undo_idle_send = None
        await super().on_stop()
