"""The producer's linger holds records while the event loop is busy and ends when it
goes idle (:func:`yadtq_app.kafka.linger.send_when_idle`), on a real broker."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiokafka

from yadtq_app.kafka.linger import send_when_idle

#: Far longer than any send here may take: a record held for it shows the linger ran out.
LINGER_MS = 3_000
#: How long the loop is kept busy while records are sent.
BUSY = 0.3


async def _started_producer(broker: Any, idle_send: bool) -> tuple[aiokafka.AIOKafkaProducer, str]:
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=LINGER_MS,
                                         enable_idempotence=False)
    await producer.start()
    if idle_send:
        assert send_when_idle(asyncio.get_running_loop(), producer) is not None
    topic = f"linger-{uuid.uuid4().hex[:8]}"
    await asyncio.wait_for(producer.send_and_wait(topic, b"warm-up"), 30)  # the topic exists, metadata known
    return producer, topic


async def _lone_send(broker: Any, idle_send: bool) -> float:
    producer, topic = await _started_producer(broker, idle_send)
    try:
        started = time.monotonic()
        await asyncio.wait_for(producer.send_and_wait(topic, b"one"), 30)
        return time.monotonic() - started
    finally:
        await producer.stop()


def test_a_lone_record_is_sent_when_the_loop_goes_idle(broker: Any) -> None:
    took = asyncio.run(_lone_send(broker, idle_send=True))
    assert took < LINGER_MS / 1000 / 3, took


def test_without_it_a_lone_record_waits_out_the_linger(broker: Any) -> None:
    # The control: the same producer without the idle send holds the record for its linger.
    took = asyncio.run(_lone_send(broker, idle_send=False))
    assert took >= LINGER_MS / 1000 * 0.9, took


async def _sends_while_busy(broker: Any) -> tuple[float, list[float]]:
    producer, topic = await _started_producer(broker, idle_send=True)
    loop = asyncio.get_running_loop()
    try:
        busy_until = time.monotonic() + BUSY

        def keep_busy() -> None:  # a ready callback every iteration: the loop never waits for I/O
            if time.monotonic() < busy_until:
                loop.call_soon(keep_busy)

        loop.call_soon(keep_busy)
        futures = [await producer.send(topic, f"r{i}".encode()) for i in range(20)]
        acked: list[float] = []
        for fut in futures:
            fut.add_done_callback(lambda _f: acked.append(time.monotonic()))
        await asyncio.wait_for(asyncio.gather(*futures), 30)
        return busy_until, acked
    finally:
        await producer.stop()


def test_records_sent_while_the_loop_is_busy_wait_until_it_is_idle(broker: Any) -> None:
    busy_until, acked = asyncio.run(_sends_while_busy(broker))
    assert len(acked) == 20
    assert min(acked) >= busy_until, min(acked) - busy_until  # held while the loop was busy
    assert max(acked) - busy_until < LINGER_MS / 1000 / 3, max(acked) - busy_until  # sent once it was idle
