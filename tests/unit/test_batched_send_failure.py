"""A bulk send that fails half-way (:func:`yadtq_app.kafka.batches.send_batched`): the
batches queued before the failure are still watched, so their own failure later is
not an unretrieved exception that asyncio reports when the future is collected."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError

from yadtq_app.kafka.batches import send_batched


class _QueuesOneBatch(AIOKafkaProducer):
    """aiokafka's producer, not started: its first batch is queued (a future the test
    fails later), the second cannot be (the accumulator stayed full)."""

    def __init__(self) -> None:
        super().__init__(bootstrap_servers="127.0.0.1:9")
        self.queued: list["asyncio.Future[Any]"] = []

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> "asyncio.Future[Any]":
        if self.queued:
            raise KafkaTimeoutError("the accumulator stayed full")
        self.queued.append(asyncio.get_running_loop().create_future())
        return self.queued[0]


@pytest.mark.asyncio
async def test_a_batch_queued_before_the_failure_is_still_watched() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    producer = _QueuesOneBatch()
    try:
        with pytest.raises(KafkaTimeoutError):
            await send_batched(producer, "tasks", [(0, b"a", b"1"), (1, b"b", b"2")])
        [queued] = producer.queued
        producer.queued.clear()
        queued.set_exception(KafkaTimeoutError("the batch expired"))
        await asyncio.sleep(0)  # its callbacks run
        del queued
        gc.collect()
    finally:
        loop.set_exception_handler(None)
        await producer.stop()
    assert [c["message"] for c in reported] == []
