"""The embedded broker's end-offset defect, and the remedy in ``yadtq_app.compat``."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.types import TP

from yadtq_app.compat import true_end_offsets

pytestmark = pytest.mark.integration

N = 2000


async def listed_and_true(bootstrap: str, *, batched: bool) -> tuple[int, int]:
    topic = f"endoff-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5 if batched else 0,
                                max_batch_size=16384 if batched else 1)
    await producer.start()
    try:
        if batched:
            for _ in range(N):
                await producer.send(topic, b"x" * 20)
            await producer.flush()
        else:
            for _ in range(N):
                await producer.send_and_wait(topic, b"x" * 20)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        listed = (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()
    fixed = await true_end_offsets(bootstrap, {TP(topic, 0): listed})
    return listed, fixed[TP(topic, 0)]


def test_batched_writes_get_a_wrong_end_offset_and_the_remedy_corrects_it(broker: Any) -> None:
    listed, fixed = asyncio.run(listed_and_true(broker.bootstrap, batched=True))
    assert listed < N, "the embedded broker's end-offset defect did not reproduce"
    assert fixed == N


def test_the_remedy_changes_nothing_when_the_end_offset_is_right(broker: Any) -> None:
    listed, fixed = asyncio.run(listed_and_true(broker.bootstrap, batched=False))
    assert listed == N and fixed == N
