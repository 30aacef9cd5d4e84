"""A backlog of tasks does not hold back the rest: a worker whose task agent has
thousands of messages waiting still folds submissions and cancels at once
(``yadtq_app.kafka.poll``: a poll never overflows the task agent's buffer)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

pytestmark = pytest.mark.integration

#: Tasks waiting when the worker starts: 2,000 a partition, far more than Faust's
#: buffer of 4,096 messages.
BACKLOG = 16000
#: How long the worker may take to settle with the backlog waiting (3-5 s here).
SETTLE = 30.0
#: How long an answer may take while the backlog runs (the overflow held them 15-20 s).
PROMPT = 3.0


async def _write_backlog(bootstrap: str, topic: str, tag: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        sent = [await producer.send(topic, key=f"{tag}-{i}".encode(),
                                    value=json.dumps({"task-id": f"{tag}-{i}", "task": "sleep",
                                                      "args": [0.02]}).encode())
                for i in range(BACKLOG)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def _until(http: httpx.Client, url: str, done: Any) -> tuple[float, Any]:
    """Read ``url`` until ``done(response)``; how long it took and the last answer."""
    t0 = time.monotonic()
    while True:
        r = http.get(url)
        if done(r) or time.monotonic() - t0 > 60:
            return time.monotonic() - t0, r
        time.sleep(0.05)


def test_submissions_and_cancels_are_folded_while_a_backlog_runs(cluster_factory: Any, broker: Any) -> None:
    cluster = cluster_factory(extra_env={"YADTQ_CONCURRENCY": "2"}).start(1)  # makes the topics
    cluster.stop()
    asyncio.run(_write_backlog(broker.bootstrap, cluster.task_topic, f"backlog-{cluster.tag}"))
    [worker] = cluster.add(1)
    worker.wait_healthy(90)
    # Settled: alive in /workers (its heartbeats folded from their topic) and answering
    # reads. An overflowing poll held the heartbeats back too: 89 s on the embedded broker.
    cluster.wait_settled(timeout=SETTLE)
    with httpx.Client(base_url=worker.url, timeout=30) as http:
        task_id = http.post("/tasks", json={"task": "add", "args": [1, 2]}).json()["task-id"]
        took, r = _until(http, f"/tasks/{task_id}", lambda r: r.status_code == 200)
        assert r.status_code == 200 and r.json()["status"] in ("queued", "success"), r.text
        assert took < PROMPT, f"a submission's status took {took:.1f} s to read: {r.text}"

        task_id = http.post("/tasks", json={"task": "sleep", "args": [0.02]}).json()["task-id"]
        assert http.post(f"/tasks/{task_id}/cancel").status_code in (200, 202)
        took, r = _until(http, f"/tasks/{task_id}", lambda r: r.status_code == 200
                         and (r.json().get("cancel_requested") or r.json()["status"] == "cancelled"))
        assert took < PROMPT, f"a cancel took {took:.1f} s to be recorded: {r.text}"
        done = http.get("/workers").json()["workers"][0]["tasks_done"]
        assert done < BACKLOG - 1000, f"the backlog was mostly gone ({done} done): the test proved nothing"
