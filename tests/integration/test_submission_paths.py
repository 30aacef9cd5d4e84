"""Other ways in: a Faust producer, and a plain Kafka client writing the wire format."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import faust
import pytest

from tests.integration.test_core import get_all, wait_all_finished
from yadtq_app import producer

pytestmark = pytest.mark.integration


def test_submit_through_a_faust_producer(shared_cluster: Any, broker: Any) -> None:
    cluster = shared_cluster

    async def send() -> list[str]:
        app = faust.App(f"submitter-{cluster.tag}", broker=broker.url)
        await app.producer.start()
        try:
            return [await producer.submit(app, "multiply", i, 3, topic=cluster.task_topic) for i in range(10)]
        finally:
            await app.producer.stop()

    ids = asyncio.run(send())
    done = wait_all_finished(cluster, ids)
    assert [done[t]["result"] for t in ids] == [i * 3 for i in range(10)]


def test_plain_kafka_client_writes_seed_format(shared_cluster: Any, broker: Any) -> None:
    """kafka-python, no yadtq code: the seed's producer."""
    from kafka import KafkaProducer

    cluster = shared_cluster
    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, value_serializer=lambda v: json.dumps(v).encode())
    ids = []
    kinds = {"add": lambda a, b: a + b, "subtract": lambda a, b: a - b, "multiply": lambda a, b: a * b}
    expected = {}
    for i in range(100):
        name = list(kinds)[i % 3]
        tid = f"kp-{cluster.tag}-{i}"
        kp.send(cluster.task_topic, key=tid.encode(), value={"task-id": tid, "task": name, "args": [i, 7]})
        ids.append(tid)
        expected[tid] = kinds[name](i, 7)
    kp.flush()
    kp.close()
    done = wait_all_finished(cluster, ids)
    assert {t: done[t]["result"] for t in ids} == expected
    assert {done[t]["worker"] for t in ids} == {w.worker_id for w in cluster.workers}
    for t in ids[:30]:
        answers = get_all(cluster, t)
        assert all(a == answers[0] for a in answers)
