"""On Apache Kafka a long fetch wait does not slow what waits on the broker: a 404 and a
read right after a submission ask the end offset on a fetch lane of their own
(``yadtq_app.kafka.lanes``, ``yadtq_app.catch_up``) instead of waiting for fetch answers."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.kafka_only]

#: Far longer than the answers below may take: two fetch answers of idle partitions
#: (how a catch-up knew the end of a partition before) take twice as long.
LONG_WAIT_MS = 3000


def test_reads_do_not_wait_for_a_long_fetch_wait(cluster_factory: Any) -> None:
    cluster = cluster_factory(extra_env={"YADTQ_FETCH_MAX_WAIT_MS": str(LONG_WAIT_MS)}).start(2)
    workers = cluster.running()
    with httpx.Client(timeout=30) as http:
        assert http.get(workers[0].url + "/health").json()["fetch"]["wait_ms"] == LONG_WAIT_MS
        for i, w in enumerate(workers * 2):
            t0 = time.monotonic()
            r = http.get(f"{w.url}/tasks/never-submitted-{cluster.tag}-{i}")
            took = time.monotonic() - t0
            assert r.status_code == 404, r.text
            assert took < 1.0, f"a 404 took {took:.2f} s"
        for i in range(6):
            accepting, asked = workers[i % 2], workers[(i // 2) % 2]
            task_id = http.post(accepting.url + "/tasks", json={"task": "add", "args": [i, i]}).json()["task-id"]
            t0 = time.monotonic()
            r = http.get(f"{asked.url}/tasks/{task_id}")
            took = time.monotonic() - t0
            assert r.status_code == 200, r.text
            assert took < 1.0, f"a read right after the submission took {took:.2f} s"
