"""Many records handed to aiokafka as whole batches, one per partition.

Faust's ``Topic.send`` costs each record a ``FutureMessage``, a serializer pass, the
monitor's send callbacks and aiokafka's own per-record future and partitioner: about
as much of a worker's time as the task costs to run. :func:`send_batched` fills one
aiokafka ``BatchBuilder`` per partition (a new one when it fills), closes it so that
it goes out with the next produce request instead of lingering, and returns one
delivery future per batch. The records are the caller's bytes, keyed and partitioned
by the caller (yadtq's partitioner is the Java client's, as the producer's).
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterable

import aiokafka

__all__ = ["send_batched"]


async def send_batched(kafka: aiokafka.AIOKafkaProducer, topic: str,
                       records: Iterable[tuple[int, bytes, bytes]]) -> list["asyncio.Future[Any]"]:
    """Hand ``records`` (``(partition, key, value)``, in order) to ``kafka`` in as few
    batches as fit; the batches' delivery futures, which fail with aiokafka's error if
    the brokers do not take a batch. Records of one partition keep their order.

    Raises what aiokafka's ``send_batch`` raises (``KafkaTimeoutError`` when a batch
    cannot be queued within the producer's request timeout, ``ProducerClosed``); the
    batches queued before it still go out, their outcome unreported."""
    batches: dict[int, list[Any]] = {}  # partition → its batches, in order
    for partition, key, value in records:
        chain = batches.get(partition)
        if chain is not None and chain[-1].append(key=key, value=value, timestamp=None) is not None:
            continue
        batch = kafka.create_batch()
        batch.append(key=key, value=value, timestamp=None)  # a batch always takes its first record
        batches.setdefault(partition, []).append(batch)
    futures: list["asyncio.Future[Any]"] = []
    try:
        # A partition's next batch waits until its last one is sent: queue every
        # partition's first batch, then the seconds, and so on.
        for turn in range(max(map(len, batches.values()), default=0)):
            for partition, chain in batches.items():
                if turn < len(chain):
                    chain[turn].close()  # complete: sent with the next request, no linger
                    futures.append(await kafka.send_batch(chain[turn], topic, partition=partition))
    except BaseException:
        for future in futures:  # nobody awaits them now: their failure is not an unretrieved error
            future.add_done_callback(_retrieve)
        raise
    return futures


def _retrieve(future: "asyncio.Future[Any]") -> None:
    if not future.cancelled():
        future.exception()
