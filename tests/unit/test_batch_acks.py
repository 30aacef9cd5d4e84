"""BatchAcks: each message of a batch acked once, on its stream, and counted out of InFlight."""

from __future__ import annotations

from typing import Any

from yadtq_app.agents.batches import BatchAcks, InFlight


class Stream:
    def __init__(self) -> None:
        self.acked: list[Any] = []

    async def ack(self, event: Any) -> bool:
        self.acked.append(event)
        return True


async def test_each_message_is_acked_once_and_the_rest_at_the_end() -> None:
    stream, flight = Stream(), InFlight(limit=4)
    events = [object() for _ in range(3)]
    flight.count = len(events)  # as InFlight.start counts a batch
    acks = BatchAcks(stream, flight, events)  # type: ignore[arg-type]
    await acks.ack(events[1])
    await acks.ack(events[1])  # e.g. a fallback's ack after the batch path's
    assert stream.acked == [events[1]] and flight.count == 2
    await acks.ack_rest()
    assert stream.acked == [events[1], events[0], events[2]] and flight.count == 0
    await acks.ack_rest()
    assert len(stream.acked) == 3
