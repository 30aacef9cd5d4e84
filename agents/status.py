"""``record_status``: the one writer of the ``task-status`` table.

Folds every :class:`~yadtq_app.records.TaskEvent` into its row with the pure
:func:`yadtq_app.state.apply_event`. Concurrency 1: a table has one writer.
"""

from __future__ import annotations

import logging
from typing import AsyncIterable

from tables.task_status import task_status
from yadtq_app.application import app
from yadtq_app.records import TaskEvent
from yadtq_app.state import apply_event
from yadtq_app.topics import events_topic

logger = logging.getLogger(__name__)


@app.agent(events_topic, name="yadtq.record_status")
async def record_status(stream: AsyncIterable[TaskEvent]) -> None:
    """Apply task events to the status table."""
    async for event in stream:
        try:
            key = event.id.encode()
            task_status[key] = apply_event(task_status.get(key), event)
        except Exception:  # noqa: BLE001 - a bad event must not stop the partition
            logger.exception("task %s: could not apply %s event", getattr(event, "id", "?"),
                             getattr(event, "kind", "?"))
