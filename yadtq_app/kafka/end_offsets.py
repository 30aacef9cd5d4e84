"""The end-offset remedy: read true end offsets from fetch answers.

The embedded broker's ListOffsets(LATEST) can answer short of the real end; a fetch
response's high watermark is right (``docs/brokers.md``, "Wrong end offsets").
:func:`true_end_offsets` corrects listed end offsets with it; on a correct broker it
changes nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterable, Mapping, Optional

import aiokafka
from faust.types import TP

__all__ = ["true_end_offsets", "join_servers"]

logger = logging.getLogger(__name__)


async def true_end_offsets(bootstrap_servers: str, listed: Mapping[TP, int], *, timeout: float = 10.0,
                           client_options: Optional[Mapping[str, Any]] = None) -> dict[TP, int]:
    """Correct end offsets as reported by ListOffsets, using fetch high watermarks.

    For each partition whose listed end is above 0, fetch from ``listed - 1`` (a record
    that exists on any broker) and read the high watermark of the fetch response. The
    answer is never below the listed one. ``client_options`` (security settings) go to
    the consumer that reads them. A partition whose high watermark cannot be read within
    ``timeout`` s keeps its listed end.
    """
    todo = {tp: off for tp, off in listed.items() if off > 0}
    result = dict(listed)
    if not todo:
        return result
    consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False,
                                         group_id=None, fetch_max_wait_ms=10, max_partition_fetch_bytes=65536,
                                         **dict(client_options or {}))
    await consumer.start()
    try:
        tps = [aiokafka.TopicPartition(tp.topic, tp.partition) for tp in todo]
        consumer.assign(tps)
        for tp, off in zip(tps, todo.values()):
            consumer.seek(tp, off - 1)
        deadline = time.monotonic() + timeout
        pending = set(tps)
        while pending and time.monotonic() < deadline:
            await consumer.getmany(*pending, timeout_ms=100)
            for tp in list(pending):
                hw = consumer.highwater(tp)
                if hw is not None:
                    pending.discard(tp)
        if pending:
            logger.warning("could not read the high watermark of %s; keeping the listed end offsets",
                           sorted(pending))
        for tp in tps:
            key = TP(tp.topic, tp.partition)
            hw = consumer.highwater(tp)
            if hw is not None and hw > result[key]:
                logger.info("end offset of %s-%s corrected from %d to %d (embedded broker)",
                            tp.topic, tp.partition, result[key], hw)
                result[key] = hw
    finally:
        await consumer.stop()
    return result


def join_servers(servers: Iterable[str] | str) -> str:
    """Bootstrap servers as one comma-separated string."""
    return servers if isinstance(servers, str) else ",".join(servers)
