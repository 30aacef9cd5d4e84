"""How far this worker has folded each events partition into the status table, and
waiting until it has folded what was written before.

The status agent calls :func:`mark_folded` after each event; the task agent waits with
:func:`wait_caught_up` after a rebalance, the HTTP API with :func:`caught_up_now`
before it answers that a task does not exist (``docs/http.md``). Where the broker's end
offsets are its high watermarks (the profile's ``exact_end_offsets``: Apache Kafka),
the end of a partition is asked of the broker; elsewhere it is taken from fetch answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Optional

from faust.types import TP

from yadtq_app.application import app
from yadtq_app.kafka.fetch_wait import last_fetched_ms
from yadtq_app.kafka.private import committed_offsets
from yadtq_app.topics import events_topic

__all__ = ["FoldedOffsets", "mark_folded", "wait_caught_up", "caught_up_now", "CATCH_UP_POLL"]

logger = logging.getLogger(__name__)

#: How often :func:`caught_up_now` looks again (s).
CATCH_UP_POLL = 0.002


class FoldedOffsets:
    """How far each events partition is folded into the table without a hole.

    Faust has been seen to lose the message at a seek position and hand the next one on
    (``docs/brokers.md``, "The message at a seek position must reach the agent"); that
    one is read again later. An event folded past such a hole does not count until the
    hole is filled: "caught up" must mean every event below the offset is in the table.
    """

    def __init__(self) -> None:
        self._through: dict[int, int] = {}

    def mark(self, partition: int, offset: int, awaited: Optional[int] = None) -> None:
        """The event at ``offset`` is folded. ``awaited``: the seek position of the
        partition whose event has not been folded yet (``None``: none is missing)."""
        if awaited is not None and offset > awaited:
            return  # past a hole: counted when the hole's event is read again and folded
        self._through[partition] = max(self._through.get(partition, 0), offset + 1)

    def through(self, partition: int, committed: Optional[int]) -> int:
        """The offset below which every event of ``partition`` is in the table: folded
        here, or ``committed`` (folded by whoever held the partition before)."""
        return max(committed or 0, self._through.get(partition, 0))

    def clear(self) -> None:
        """Forget everything: partitions were assigned, and reading resumes at the
        committed offsets."""
        self._through.clear()


#: The events partitions folded into this worker's table.
_folded = FoldedOffsets()


async def _on_assigned(*args: Any, **kwargs: Any) -> None:
    _folded.clear()


app.on_partitions_assigned.connect(_on_assigned)


def mark_folded(partition: int, offset: int) -> None:
    """Record that the event at ``offset`` of events ``partition`` is in the table."""
    awaited = app.consumer.awaiting(  # type: ignore[attr-defined]  # yadtq_app.kafka.consumer.Consumer's
        TP(events_topic.get_topic_name(), partition))
    _folded.mark(partition, offset, awaited)


async def wait_caught_up(partition: int, *, timeout: float = 10.0) -> bool:
    """Wait until every event now in events ``partition`` is folded into the table.

    The target is the partition's end offset asked of the broker where that is exact,
    else its high watermark from this worker's first fetch since the partition was
    assigned. True when caught up; False after ``timeout``, when a
    rebalance starts, or when the group evicted this worker.
    """
    tp = TP(events_topic.get_topic_name(), partition)
    deadline = time.monotonic() + timeout
    target = None
    while True:
        if target is None:
            if app.profile.exact_end_offsets:
                target = await _end_offset(tp, deadline)
            else:
                try:
                    target = app.consumer.highwater(tp)
                except Exception:  # noqa: BLE001 - not assigned / no consumer yet: keep waiting
                    target = None
        if target is not None and _folded_through(tp) >= target:
            return True
        if time.monotonic() >= deadline:
            logger.warning("status of partition %d not caught up after %.0f s (folded %s, committed %s, end %s)",
                           partition, timeout, _folded_through(tp),
                           committed_offsets(app.consumer).get(tp), target)
            return False
        await asyncio.sleep(0.005)


def _folded_through(tp: TP) -> int:
    """The offset below which every event of events partition ``tp`` is in the table."""
    return _folded.through(tp.partition, committed_offsets(app.consumer).get(tp))


async def _end_offset(tp: TP, deadline: float) -> Optional[int]:
    """The end offset of ``tp`` asked of the broker now (ListOffsets, on a fetch lane of
    the worker consumer's, so not behind its fetch in flight); ``None`` if it cannot be
    had before ``deadline``."""
    try:
        ends = await asyncio.wait_for(app.consumer.highwaters(tp), max(0.0, deadline - time.monotonic()))
        return int(ends[tp])
    except Exception:  # noqa: BLE001 - not assigned / no consumer / broker away: not known now
        return None


async def _fetched_end(tp: TP, deadline: float) -> Optional[int]:
    """The end offset of ``tp`` as of now from fetch answers: the high watermark of the
    second one after this call (two fetch round trips, no request of its own);
    ``None`` if not known before ``deadline`` or the partition cannot be acted on."""
    began = int(time.time() * 1000)
    first: Optional[int] = None
    while True:
        if app.rebalancing or app.revoking or not app.may_act_now(tp.topic, tp.partition):
            return None
        stamp = last_fetched_ms(app.consumer, tp)
        if stamp is not None and stamp > began:
            if first is None:
                first = stamp
            elif stamp > first:
                break
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(CATCH_UP_POLL)
    try:
        return int(app.consumer.highwater(tp))
    except Exception:  # noqa: BLE001 - not assigned any more
        return None


async def caught_up_now(partition: int, *, timeout: float = 5.0) -> bool:
    """Wait until every event written to events ``partition`` before this call is folded.

    The end of the partition as of now is asked of the broker where its end offsets are
    exact, else taken from fetch answers (:func:`_fetched_end`). True when caught up;
    False when it cannot know (the partition is not this worker's, a rebalance is under
    way, or ``timeout``).
    """
    tp = TP(events_topic.get_topic_name(), partition)
    deadline = time.monotonic() + timeout
    if app.rebalancing or app.revoking or not app.may_act_now(tp.topic, partition):
        return False
    target = await (_end_offset if app.profile.exact_end_offsets else _fetched_end)(tp, deadline)
    if target is None:
        return False
    while True:
        if _folded_through(tp) >= target:
            return True
        if app.rebalancing or time.monotonic() >= deadline:
            return False
        await asyncio.sleep(CATCH_UP_POLL)
