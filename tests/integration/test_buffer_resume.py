"""A partition Faust resumes once its agent's buffer has room is read at once
(:meth:`yadtq_app.kafka.consumer.Consumer.on_buffer_drop`), on a real broker.

Faust stops polling a partition whose agent's buffer is full, while aiokafka goes on
fetching it. When the buffer drains, Faust adds the partition back to the set its poll
asks for, but a poll already waiting (for new records of the other partitions) passed
over the records fetched meanwhile: it went on waiting for new records, up to Faust's
one-second poll. One worker taking 5,000 bulk-submitted tasks stopped for half a
second in most runs on the embedded broker. Here the poll waits far longer than the
test allows, so only the wake ends it in time.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import aiokafka
import faust
from faust.types import TP
from yarl import URL

from tests.support.kafka import new_topic
from yadtq_app.kafka import private
from yadtq_app.kafka.consumer import Consumer
from yadtq_app.kafka.profiles import EmbeddedTransport

#: The waiting poll's own limit (s): far past the test's.
POLL_TIMEOUT = 30.0


async def _nothing(*args: Any) -> None:
    return None


async def _resumed_partition_is_read(bootstrap: str) -> None:
    topic = await new_topic(bootstrap, "resume", 2)
    buffered, other = TP(topic, 0), TP(topic, 1)
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(5):
            await producer.send_and_wait(topic, f"r{i}".encode(), partition=buffered.partition)
    finally:
        await producer.stop()
    kafka = aiokafka.AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                      auto_offset_reset="earliest", fetch_max_wait_ms=100)
    await kafka.start()
    try:
        kafka.assign([buffered, other])
        fetcher = private.consumer_fetcher(kafka)
        deadline = time.monotonic() + 30
        while buffered not in fetcher._records:  # aiokafka has fetched the buffered partition's records
            assert time.monotonic() < deadline, "the records were never fetched"
            await asyncio.sleep(0.05)

        # Faust's consumer as the worker has it, with Faust's poll asking for the other
        # partition only: the buffered one's agent buffer is full.
        app = faust.App("yadtq-buffer-resume", broker=f"kafka://{bootstrap}", store="memory://",
                        loop=asyncio.get_running_loop())
        consumer = Consumer(EmbeddedTransport([URL(f"kafka://{bootstrap}")], app), callback=_nothing,
                            on_partitions_revoked=_nothing, on_partitions_assigned=_nothing)
        consumer._thread = SimpleNamespace(_consumer=kafka)  # the in-loop thread's consumer
        active = consumer._get_active_partitions()
        active.clear()
        active.add(other)
        consumer.on_buffer_full(buffered)
        poll = asyncio.ensure_future(fetcher.fetched_records(active, timeout=POLL_TIMEOUT))
        await asyncio.sleep(0.3)
        assert not poll.done()  # the other partition has no records: the poll waits

        consumer.on_buffer_drop(buffered)  # the buffer drained: Faust asks for it again
        records = await asyncio.wait_for(poll, 5)
        assert [r.value for r in records[buffered]] == [f"r{i}".encode() for i in range(5)]
    finally:
        await kafka.stop()


def test_a_resumed_partition_s_fetched_records_come_at_once(broker: Any) -> None:
    asyncio.run(_resumed_partition_is_read(broker.bootstrap))
