"""Why the broker did not confirm a write (the advice in a 503's message)."""

from __future__ import annotations

import asyncio
from typing import Any

from . import private

__all__ = ["unconfirmed_reason"]


async def unconfirmed_reason(app: Any, topic: str, key: bytes, exc: BaseException, *,
                             timeout: float = 2.0) -> str:
    """Why the broker did not confirm a record keyed ``key`` for ``topic``: the in-sync
    replicas of its partition against ``min.insync.replicas`` when fresh metadata shows
    too few, else what was raised (a timeout: brokers unreachable or too few replicas).
    Never raises."""
    what = ("no broker confirmed it in time: too few brokers up, or too few in-sync replicas for acks=all"
            if isinstance(exc, asyncio.TimeoutError) else repr(exc))
    try:
        producer = private.ensure_producer(app.producer)
        await asyncio.wait_for(producer.client.force_metadata_update(), timeout)
        partition = app.producer.key_partition(topic, key).partition
        meta = private.cluster_partition(producer.client, topic, partition)
    except Exception:  # noqa: BLE001 - the reason is advice; the answer is a 503 anyway
        return what
    needed = app.settings.min_insync_replicas
    if needed is not None and len(meta.isr) < needed:
        return f"not enough in-sync replicas: {len(meta.isr)} of the {needed} needed for partition {partition}"
    return what
