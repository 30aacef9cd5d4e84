"""``record_status``: the one writer of the ``task-status`` table.

Folds every :class:`~yadtq_app.records.TaskEvent` into its row with the pure
:func:`yadtq_app.state.apply_event`. Concurrency 1: a table has one writer.

It also tracks how far it has folded each events partition, so the task agent can
wait, after a rebalance, until every event already written for a partition is in the
table (:func:`wait_caught_up`) before deciding whether a redelivered task still needs
to run. Without that, a task that finished on a worker that then died — its
``success`` event written but not yet folded — would run a second time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, AsyncIterable

from faust.types import TP

from tables.task_status import task_status
from yadtq_app.application import app
from yadtq_app.state import apply_event
from yadtq_app.topics import events_topic

logger = logging.getLogger(__name__)

#: events partition → offset after the last event folded into the table.
_folded: dict[int, int] = {}


@app.agent(events_topic, name="yadtq.record_status")
async def record_status(stream: AsyncIterable[Any]) -> None:
    """Apply task events to the status table."""
    async for event in stream.events():  # type: ignore[attr-defined]
        value = event.value
        msg = event.message
        if not await app.may_act_on(msg.topic, msg.partition):
            continue  # a frozen worker's leftovers: the new owner folds this event
        try:
            key = value.id.encode()
            task_status[key] = apply_event(task_status.get(key), value)
        except Exception:  # noqa: BLE001 - a bad event must not stop the partition
            logger.exception("task %s: could not apply %s event", getattr(value, "id", "?"),
                             getattr(value, "kind", "?"))
        _folded[msg.partition] = max(_folded.get(msg.partition, 0), msg.offset + 1)


async def wait_caught_up(partition: int, *, timeout: float = 10.0) -> bool:
    """Wait until every event now in events ``partition`` is folded into the table.

    The target is the partition's high watermark as carried by this worker's first
    fetch response since the partition was assigned (aiokafka forgets it on
    reassignment), so every event written before the assignment is below it; fetch
    responses carry it correctly even on the embedded broker. True when caught up;
    False when it cannot know: after ``timeout``, when a rebalance starts (Faust pauses
    the status agent then, and waits for this task's message to be acked before it
    rebalances, so waiting on would deadlock), or when the group evicted this worker.
    """
    tp = TP(events_topic.get_topic_name(), partition)
    deadline = time.monotonic() + timeout
    target = None
    while True:
        if target is None:
            try:
                target = app.consumer.highwater(tp)
            except Exception:  # noqa: BLE001 - not assigned / no consumer yet: keep waiting
                target = None
        committed = app.consumer._committed_offset.get(tp) or 0  # type: ignore[attr-defined]
        if target is not None and max(committed, _folded.get(partition, 0)) >= target:
            return True
        if time.monotonic() >= deadline:
            logger.warning("status of partition %d not caught up after %.0f s (folded %s, committed %s, end %s)",
                           partition, timeout, _folded.get(partition), committed, target)
            return False
        await asyncio.sleep(0.005)
