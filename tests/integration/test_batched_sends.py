"""Records handed to aiokafka as whole batches (:func:`yadtq_app.kafka.batches.send_batched`),
on a real broker: every record arrives, a partition's in the order given, batches split
when full, and a batch goes out at once whatever the producer's linger."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiokafka

from tests.support.kafka import new_topic
from yadtq_app.kafka.batches import send_batched

PARTITIONS = 3
#: Far longer than a send takes: a batch held for it shows it lingered.
LINGER_MS = 3_000


async def _send_and_read(broker: Any, records: list[tuple[int, bytes, bytes]], batch_size: int
                         ) -> tuple[int, float, dict[int, list[tuple[bytes, bytes]]]]:
    topic = await new_topic(broker.bootstrap, "batched", PARTITIONS)
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=LINGER_MS,
                                         max_batch_size=batch_size, enable_idempotence=False)
    await producer.start()
    try:
        started = time.monotonic()
        futures = await asyncio.wait_for(send_batched(producer, topic, records), 30)
        await asyncio.wait_for(asyncio.gather(*futures), 30)
        took = time.monotonic() - started
    finally:
        await producer.stop()
    consumer = aiokafka.AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                                         enable_auto_commit=False)
    await consumer.start()
    read: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(PARTITIONS)}
    try:
        deadline = time.monotonic() + 30
        while sum(map(len, read.values())) < len(records) and time.monotonic() < deadline:
            for tp, messages in (await consumer.getmany(timeout_ms=500)).items():
                read[tp.partition] += [(m.key, m.value) for m in messages]
    finally:
        await consumer.stop()
    return len(futures), took, read


def test_every_record_arrives_in_order_in_batches_that_split_when_full(broker: Any) -> None:
    records = [(i % PARTITIONS, f"k{i}".encode(), f"value-{i}-".encode() * 20) for i in range(300)]
    n_batches, _, read = asyncio.run(_send_and_read(broker, records, batch_size=2048))
    for p in range(PARTITIONS):
        assert read[p] == [(k, v) for q, k, v in records if q == p]
    # 100 records of ~150 bytes per partition do not fit one 2 KiB batch.
    assert n_batches > PARTITIONS, n_batches


def test_a_batch_goes_out_at_once_whatever_the_linger(broker: Any) -> None:
    records = [(0, b"a", b"1"), (1, b"b", b"2")]
    n_batches, took, read = asyncio.run(_send_and_read(broker, records, batch_size=16384))
    assert n_batches == 2
    assert read[0] == [(b"a", b"1")] and read[1] == [(b"b", b"2")]
    assert took < LINGER_MS / 1000 / 3, took
