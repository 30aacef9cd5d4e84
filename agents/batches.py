"""Task messages a batch at a time: :func:`ready_batches`; :class:`InFlight`, how
many of them are read and not handled yet; :class:`BatchAcks`, one batch's acks.

:func:`ready_batches` hands the task agent every message already waiting in its
stream, up to :data:`BATCH_MAX`, and never waits for more: a lone message is a batch
of one, at once. The agent acks each message when it is handled
(:mod:`agents.batch_run` runs the plain ``def`` tasks of a batch together), so the
committed offset never passes a task that has not ended. Why batches, and what they
measured: ``docs/tasks.md`` (batches).
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Awaitable, Optional

from faust.types import EventT, StreamT

from yadtq_app.agents.batch_run import slots
from yadtq_app.application import app

__all__ = ["BATCH_MAX", "IN_FLIGHT_MAX", "BatchAcks", "InFlight", "ready_batches"]

#: The most task messages one batch takes.
BATCH_MAX = 256
#: The most task messages read and not yet handled; the reader waits above it.
IN_FLIGHT_MAX = 4 * BATCH_MAX


async def ready_batches(stream: StreamT[Any], max_: int = BATCH_MAX) -> AsyncIterator[list[EventT[Any]]]:
    """Yield ``stream``'s events in lists of up to ``max_``: each list as soon as no
    further event waits in the stream's queue. The stream acks none of them: the
    caller acks each (``stream.ack``) once it is handled. Events read and not yielded
    yet are acked when Faust waits for every message being processed (a rebalance, a
    stop: such acks do not count), lest it wait for them forever."""
    stream.enable_acks = False
    waiting = stream.channel.queue  # type: ignore[attr-defined]  # a Faust channel's queue
    batch: list[EventT[Any]] = []
    _unyielded[id(stream)] = (stream, batch)
    try:
        async for event in stream.events():
            batch.append(event)
            if len(batch) < max_ and not waiting.empty():
                continue  # (with flow control off, Faust drops what follows: see _let_go_unstarted)
            taken = batch[:]
            batch.clear()
            yield taken
    finally:
        _unyielded.pop(id(stream), None)


#: Each reading stream's events read and not yielded yet.
_unyielded: dict[int, tuple[StreamT[Any], list[EventT[Any]]]] = {}


async def _let_go_unstarted() -> None:
    """Faust waits for every message being processed (a rebalance, a stop): ack the
    events read and not yielded yet, and wake what waits for a slot, to give up."""
    slots.wake_all()
    for stream, batch in list(_unyielded.values()):
        events = batch[:]
        batch.clear()
        for event in events:
            await stream.ack(event)


app.on_wait_empty.append(_let_go_unstarted)


class InFlight:
    """The batches being handled, each in an asyncio task of its own, and how many of
    their messages are not acked yet (at most ``limit`` before the reader waits)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self._tasks: set["asyncio.Future[None]"] = set()
        self._room: Optional["asyncio.Future[None]"] = None

    def start(self, handling: Awaitable[None], messages: int) -> None:
        """Handle a batch of ``messages`` in the background (``handling`` acks each one
        through its :class:`BatchAcks`)."""
        self.count += messages
        task = asyncio.ensure_future(handling)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def acked(self) -> None:
        """One message of a batch is acked."""
        self.count -= 1
        if self._room is not None and self.count < self.limit and not self._room.done():
            self._room.set_result(None)

    async def room(self) -> None:
        """Wait until fewer than ``limit`` messages are handled."""
        while self.count >= self.limit:
            self._room = asyncio.get_running_loop().create_future()
            await self._room

    def cancel(self) -> None:
        """Cancel every batch still handled (the worker is stopping)."""
        for task in list(self._tasks):
            task.cancel()


class BatchAcks:
    """The acks of one batch's messages: each acked once, on its stream, and counted out
    of the batches in flight."""

    __slots__ = ("_stream", "_flight", "_unacked")

    def __init__(self, stream: StreamT[Any], flight: InFlight, events: list[EventT[Any]]) -> None:
        self._stream = stream
        self._flight = flight
        self._unacked = {id(event): event for event in events}

    async def ack(self, event: EventT[Any]) -> None:
        """Ack ``event``'s message, unless it is acked already."""
        if self._unacked.pop(id(event), None) is not None:
            await self._stream.ack(event)
            self._flight.acked()

    async def ack_rest(self) -> None:
        """Ack every message of the batch not acked yet."""
        for event in list(self._unacked.values()):
            await self.ack(event)
