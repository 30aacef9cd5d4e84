"""Worker liveness: a timer that heartbeats, and ``record_heartbeats``, the table writer."""

from __future__ import annotations

import logging
import os
import time
from typing import AsyncIterable

from yadtq_app.application import app, settings
from yadtq_app.records import Heartbeat
from yadtq_app.tables.workers import workers
from yadtq_app.topics import heartbeat_topic

logger = logging.getLogger(__name__)


def current_heartbeat() -> Heartbeat:
    """This worker's heartbeat as of now."""
    stats = app.stats
    try:
        assigned = sorted(tp.partition for tp in app.consumer.assignment() if tp.topic == settings.task_topic)
    except Exception:  # noqa: BLE001 - no assignment yet
        assigned = []
    return Heartbeat(worker=settings.worker_id, host=app.hostname, pid=os.getpid(), web_url=settings.web_url,
                     at=time.time(), started_at=app.started_at, tasks_done=stats.tasks_done,
                     tasks_failed=stats.tasks_failed, in_progress=stats.in_progress, partitions=assigned,
                     invalid_messages=dict(stats.invalid_messages), tasks=app.registry.names(),
                     tasks_digest=app.registry.digest())


@app.timer(  # type: ignore[untyped-decorator]  # Faust declares App.timer @no_type_check
    interval=settings.heartbeat_interval, name="yadtq.send_heartbeat")
async def send_heartbeat() -> None:
    """Announce this worker on the heartbeat topic."""
    await heartbeat_topic.send(key=settings.worker_id, value=current_heartbeat())


@app.agent(heartbeat_topic, name="yadtq.record_heartbeats")
async def record_heartbeats(stream: AsyncIterable[Heartbeat]) -> None:
    """Keep each worker's latest heartbeat in the windowed ``workers`` table."""
    async for hb in stream:
        try:
            workers[hb.worker] = hb
        except Exception:  # a bad heartbeat must not stop liveness tracking
            logger.exception("could not record heartbeat %r", hb)
