"""How many records one poll may hand to Faust, so that a backlog of tasks never holds
back the other topics.

Faust's conductor puts each fetched record into its agent's buffer
(``stream_buffer_maxsize`` messages). Once a buffer holds a fifth less than that, the
record's partition is paused, but every record the last poll returned is still
delivered; if they overflow the buffer, the conductor waits for the agent to take each
one in turn, and records of every other topic wait behind them. With Faust's unbounded
polls, one poll of a task backlog filled the task agent's buffer and held the events
topic back for the time the agent took to work through the overflow: 15 s with
two-at-a-time 20 ms tasks on the embedded broker, in which status reads of a task just
submitted answered 503 and cancels waited; a worker started on a backlog of 16,000 such
tasks was missing from ``GET /workers`` for 89 s (its heartbeats are folded from their
topic too). With longer tasks it lasts minutes.

Each poll pauses the partitions it brought over the mark, so at most one poll per task
partition overshoots it: bounding a poll to the buffer's headroom divided by the
partitions keeps the overflow from ever happening.
"""

from __future__ import annotations

import math

from mode.utils.queues import FlowControlQueue

__all__ = ["STREAM_BUFFER_MAXSIZE", "max_poll_records"]

#: Faust's ``stream_buffer_maxsize`` (its default), which yadtq keeps.
STREAM_BUFFER_MAXSIZE = 4096
#: The fewest records a poll may bring, whatever the partition count.
MIN_POLL_RECORDS = 10


def max_poll_records(partitions: int, buffer: int = STREAM_BUFFER_MAXSIZE) -> int:
    """The most records one poll may return for agents reading topics of ``partitions``
    partitions through buffers of ``buffer`` messages (Faust's ``broker_max_poll_records``)."""
    headroom = buffer - math.floor(buffer / FlowControlQueue.pressure_high_ratio)  # where Faust pauses
    return max(MIN_POLL_RECORDS, headroom // max(1, partitions))
