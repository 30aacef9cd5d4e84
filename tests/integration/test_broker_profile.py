"""The embedded broker's end-offset defect, and the remedy in ``yadtq_app.kafka.end_offsets``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.types import TP

from tests.support.kafka import new_topic
from yadtq_app.kafka.end_offsets import true_end_offsets

pytestmark = pytest.mark.integration

N = 2000


async def listed_and_true(bootstrap: str, *, batched: bool) -> tuple[int, int]:
    topic = await new_topic(bootstrap, "endoff")
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


@pytest.mark.embedded_only
def test_batched_writes_get_a_wrong_end_offset_and_the_remedy_corrects_it(broker: Any) -> None:
    listed, fixed = asyncio.run(listed_and_true(broker.bootstrap, batched=True))
    assert listed < N, "the embedded broker's end-offset defect did not reproduce"
    assert fixed == N


def test_the_remedy_changes_nothing_when_the_end_offset_is_right(broker: Any) -> None:
    listed, fixed = asyncio.run(listed_and_true(broker.bootstrap, batched=False))
    assert listed == N and fixed == N


async def _first_record_within(bootstrap: str, topic: str, fetch_max_wait_ms: int, timeout: float) -> bool:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"x")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=fetch_max_wait_ms,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        try:
            await asyncio.wait_for(consumer.getone(), timeout)
            return True
        except asyncio.TimeoutError:
            return False
    finally:
        await consumer.stop()


@pytest.mark.embedded_only
def test_a_zero_fetch_wait_reads_nothing_on_the_embedded_broker(broker: Any) -> None:
    # Why the embedded profile refuses a 0 ms fetch wait (yadtq_app.kafka.profiles.EmbeddedProfile.fetch_waits).
    async def run() -> tuple[bool, bool]:
        topic = await new_topic(broker.bootstrap, "wait0")
        return (await _first_record_within(broker.bootstrap, topic, 0, 2.0),
                await _first_record_within(broker.bootstrap, topic, 1, 10.0))
    zero, one = asyncio.run(run())
    assert not zero, "a 0 ms fetch wait read a record: the embedded broker's fetch loop has changed"
    assert one


def test_fetches_wait_less_while_work_flows(broker: Any) -> None:
    """fetch_wait.adapt_fetch_wait on a real consumer: the waits its fetch requests carry."""
    from yadtq_app.kafka.fetch_wait import FetchWait, adapt_fetch_wait

    async def run() -> None:
        topic = await new_topic(broker.bootstrap, "fetchwait")
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, fetch_max_wait_ms=50,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, 0)])
            wait = FetchWait(50, 2, hold=0.5)
            assert adapt_fetch_wait(consumer, wait)
            sent: list[tuple[float, int]] = []  # (when, max wait) of every fetch request sent
            fetcher = consumer._fetcher
            proc = fetcher._proc_fetch_request

            async def spy(assignment: Any, node_id: Any, request: Any) -> Any:
                sent.append((time.monotonic(), request._max_wait_ms))
                return await proc(assignment, node_id, request)

            fetcher._proc_fetch_request = spy

            async def waits_after(t0: float, n: int, timeout: float = 10.0) -> list[int]:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    later = [w for t, w in sent if t > t0]
                    if len(later) >= n:
                        return later[:n]
                    await asyncio.sleep(0.01)
                raise AssertionError(f"fewer than {n} fetches in {timeout} s")

            assert await waits_after(time.monotonic(), 3) == [50, 50, 50]  # idle
            wait.last_work = t0 = time.monotonic()  # an agent got a message
            busy = await waits_after(t0 + 0.06, 5)  # once the fetch in flight has returned
            assert busy == [2] * 5
            idle = await waits_after(t0 + 0.5 + 0.06, 2)  # the hold is over
            assert idle == [50, 50]
        finally:
            await consumer.stop()

    asyncio.run(run())


@pytest.mark.embedded_only  # the fetch waits are the embedded profile's
def test_a_worker_fetches_no_changelog_it_writes_and_polls_faster_while_busy(shared_cluster: Any) -> None:
    """Across real worker processes: what their consumers fetch (``GET /health``)."""
    import httpx

    from tests.support.wait import wait_for
    from yadtq_app import Client
    from yadtq_app.kafka.fetch_wait import BUSY_HOLD
    from yadtq_app.kafka.profiles import EmbeddedProfile

    cluster = shared_cluster
    idle, busy = EmbeddedProfile.fetch_max_wait_ms, EmbeddedProfile.busy_fetch_max_wait_ms

    def fetch(w: Any) -> dict[str, Any]:
        return dict(httpx.get(w.url + "/health", timeout=5).json()["fetch"])

    # Each worker writes the changelogs of the table partitions it holds; Faust pauses
    # them, and aiokafka must not fetch them either.
    for w in cluster.running():
        state = wait_for(lambda w=w: fetch(w) or None, timeout=30, message="the worker's fetch state")
        assert state["partitions"] > 0
        assert state["changelog_partitions"] == 0, state

    client = Client(cluster.workers[0].url)
    handles = [client.submit("add", i, i) for i in range(100)]
    # While tasks flow, a worker's fetches carry the short wait ...
    seen_busy = wait_for(lambda: [w.worker_id for w in cluster.running() if fetch(w)["wait_ms"] == busy],
                         timeout=30, interval=0.01, message="a busy worker's short fetch wait")
    assert [h.result(timeout=30) for h in handles] == [2 * i for i in range(100)]
    assert seen_busy
    # ... and once they stop, the idle one again.
    wait_for(lambda: all(fetch(w)["wait_ms"] == idle for w in cluster.running()), timeout=BUSY_HOLD + 20,
             message="the idle fetch wait")


def test_every_message_an_agent_got_is_acked_through_the_consumer(shared_cluster: Any) -> None:
    """yadtq's consumer learns of each ack (its stale-ack handling and the stream
    watchdog depend on it). Faust's compiled stream iterator acked behind its back: the
    messages "in process" only grew, and the watchdog never read a stalled partition
    again."""
    import httpx

    from tests.support.wait import wait_for
    from yadtq_app import Client

    cluster = shared_cluster

    def in_process() -> dict[str, int]:
        return {w.worker_id: httpx.get(w.url + "/health", timeout=5).json()["fetch"].get("messages_in_process", -1)
                for w in cluster.running()}

    client = Client(cluster.workers[0].url)
    handles = [client.submit("add", i, i) for i in range(50)]
    assert [h.result(timeout=60) for h in handles] == [2 * i for i in range(50)]
    wait_for(lambda: set(in_process().values()) == {0}, timeout=30, interval=0.2,
             message="no message left in process once every task is done")
