"""Making and reading topics directly, for assertions about what was (not) written."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def new_topic(bootstrap: str, prefix: str, partitions: int = 1, replicas: int = 1) -> str:
    """Create a topic named ``prefix-<random>`` with ``partitions`` and ``replicas``; its name."""
    topic = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, replicas)])
    finally:
        await admin.close()
    return topic


def count_messages(bootstrap: str, topic: str, timeout: float = 10.0) -> int:
    """How many records the topic holds, by reading them all (not by trusting end offsets)."""
    return len(read_all(bootstrap, topic, timeout=timeout))


def read_all(bootstrap: str, topic: str, timeout: float = 10.0) -> list[Any]:
    async def run() -> list[Any]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                    fetch_max_wait_ms=10, auto_offset_reset="earliest")
        await consumer.start()
        try:
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                await consumer._client.force_metadata_update()
                parts = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            records: list[Any] = []
            idle = 0
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while loop.time() < deadline:
                batch = await consumer.getmany(*tps, timeout_ms=100)
                got = [r for rs in batch.values() for r in rs]
                records.extend(got)
                if got:
                    idle = 0
                    continue
                done = True
                for tp in tps:
                    hw = consumer.highwater(tp)
                    if hw is None or await consumer.position(tp) < hw:
                        done = False
                idle += 1
                if done and idle >= 2:
                    break
            return records
        finally:
            await consumer.stop()

    return asyncio.run(run())


def committed_offset(bootstrap: str, group: str, topic: str, partition: int) -> int | None:
    """The offset ``group`` has committed for one partition (``None`` if none)."""
    async def run() -> int | None:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            return await consumer.committed(TopicPartition(topic, partition))  # type: ignore[no-any-return]
        finally:
            await consumer.stop()

    return asyncio.run(run())
