"""The consumer group's lag on the task topic, read from the broker.

The lag of a task partition is its end offset minus the group's committed offset (its
log start while nothing was committed): the task messages no worker has finished yet.
It is read from the broker, so any worker reports every partition, whether a living
worker holds it, a stopped one still does, or none. A reading is kept for
:data:`TTL` seconds: a scrape and a dashboard poll each second cost the broker one
round of requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Optional

import aiokafka
from faust.types import TP

from .kafka.end_offsets import true_end_offsets
from .security import client_options

if TYPE_CHECKING:  # pragma: no cover
    from .application import YadtqApp

__all__ = ["GroupLag", "TTL"]

logger = logging.getLogger(__name__)

#: Seconds a reading is reused.
TTL = 1.0
#: Seconds one reading may take.
READ_TIMEOUT = 5.0


class GroupLag:
    """Lag per task partition of ``app``'s consumer group (:meth:`read`)."""

    def __init__(self, app: YadtqApp) -> None:
        self.app = app
        #: The last reading: task partition → lag (empty until one succeeded).
        self.last: dict[int, int] = {}
        self._at = 0.0
        self._consumer: Optional[aiokafka.AIOKafkaConsumer] = None
        self._lock = asyncio.Lock()

    async def read(self) -> dict[int, int]:
        """Task partition → lag, at most :data:`TTL` s old; the last reading (or ``{}``)
        when the broker does not answer in time."""
        async with self._lock:
            if time.monotonic() - self._at < TTL:
                return self.last
            try:
                self.last = await asyncio.wait_for(self._read(), READ_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - a metric must not fail its page
                logger.debug("could not read the group's lag: %r", exc)
                await self.close()
            self._at = time.monotonic()
            return self.last

    async def _read(self) -> dict[int, int]:
        s = self.app.settings
        if self._consumer is None:
            consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=s.bootstrap_servers, group_id=s.app_id,
                                                 enable_auto_commit=False, **client_options(s))
            await consumer.start()
            self._consumer = consumer
        consumer = self._consumer
        tps = [aiokafka.TopicPartition(s.task_topic, p) for p in range(s.partitions)]
        ends = await consumer.end_offsets(tps)
        if self.app.profile.fixes_end_offsets():
            listed = {TP(tp.topic, tp.partition): n for tp, n in ends.items()}
            fixed = await true_end_offsets(s.bootstrap_servers, listed, client_options=client_options(s))
            ends = {aiokafka.TopicPartition(tp.topic, tp.partition): n for tp, n in fixed.items()}
        starts = await consumer.beginning_offsets(tps)
        lag = {}
        for tp in tps:
            committed = await consumer.committed(tp)
            done = committed if committed is not None else starts[tp]
            lag[tp.partition] = max(ends[tp] - done, 0)
        return lag

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                await consumer.stop()
            except Exception:  # noqa: BLE001 - closing a broken client
                pass
