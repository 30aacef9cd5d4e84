"""yadtq's consumer at a stop: no wait for acks already made, no reread left running.

A real (unstarted) consumer of yadtq's transport on a Faust app; nothing reaches a broker.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest
from faust.types import TP, Message
from yarl import URL

from yadtq_app.kafka import private
from yadtq_app.kafka.consumer import Consumer
from yadtq_app.kafka.profiles import EmbeddedTransport

TASKS = TP("tasks", 0)


async def _nothing(*args: Any) -> None:
    return None


@pytest.fixture
async def consumer() -> Consumer:
    """Made in the test's event loop, which the app and the consumer take as theirs."""
    app = faust.App("yadtq-consumer-stop", broker="kafka://127.0.0.1:1", store="memory://",
                    loop=asyncio.get_running_loop())
    transport = EmbeddedTransport([URL("kafka://127.0.0.1:1")], app)
    return Consumer(transport, callback=_nothing, on_partitions_revoked=_nothing,
                    on_partitions_assigned=_nothing)


def _message(offset: int, *, acked: bool) -> Message:
    message = Message(TASKS.topic, TASKS.partition, offset, 0.0, 0, None, b"k", b"v", None, None, tp=TASKS)
    message.acked = acked
    return message


async def test_a_message_acked_before_the_wait_is_not_waited_for(consumer: Consumer) -> None:
    # Faust's own waits a full second here for an ack that came before it.
    acked = _message(3, acked=True)
    private.unacked_messages(consumer).add(acked)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await consumer.wait_empty()  # it takes no cancel (Faust's): timed, not raced
    assert loop.time() - began < 0.5
    assert acked not in private.unacked_messages(consumer)


async def test_a_message_not_acked_is_still_waited_for(consumer: Consumer) -> None:
    running = _message(4, acked=False)
    private.unacked_messages(consumer).add(running)
    waiting = asyncio.ensure_future(consumer.wait_empty())  # Faust's wait does not take a cancel
    await asyncio.sleep(0.3)
    assert not waiting.done()
    consumer.ack(running)
    await asyncio.wait_for(waiting, 5)
    assert running not in private.unacked_messages(consumer)


async def test_a_reread_waiting_for_flow_control_ends_when_the_consumer_stops(consumer: Consumer) -> None:
    consumer.reread(TASKS, 5)  # flow control is off: it waits
    task = consumer._yadtq_reread_task
    assert task is not None
    await asyncio.sleep(0.3)
    assert not task.done()
    await consumer.stop()
    await asyncio.wait_for(task, 1)
