"""Outcomes too big for a Kafka record: the task fails, the workers live on.

Seen before the fix: ``echo`` of a 600 KB string, or ``multiply("ab", 1000000)`` from a
50-byte body, made a status row over the broker's record limit; Faust's producer buffer
crashed, the worker stopped working while ``/health`` still said ``ok``, the next owner
re-ran the task and crashed the same way, and the cluster was down within seconds.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.wait import wait_for
from yadtq_app import Client

pytestmark = pytest.mark.integration

#: Small limits so the test moves little data; the mechanism is the same at the defaults.
MAX_RESULT = 20_000


def final_row(client: Client, task_id: str, timeout: float = 60) -> dict[str, Any]:
    def final() -> Any:
        row = client.get_task(task_id)
        return row if row["status"] in ("success", "failed") else None

    return wait_for(final, timeout=timeout, message=f"task {task_id} to finish")  # type: ignore[no-any-return]


def test_a_result_over_the_limit_fails_the_task_and_no_worker_dies(cluster_factory: Any) -> None:
    cluster = cluster_factory(extra_env={"YADTQ_MAX_RESULT_BYTES": str(MAX_RESULT)}, partitions=4).start(2)
    client = Client(cluster.running()[0].url)
    before = [client.submit("add", i, i) for i in range(10)]
    # A 50-byte body whose result is 2 MB (over Kafka's 1 MB record limit), one over the
    # result limit but under the record limit, and one just under the result limit.
    huge = client.submit("multiply", "ab", 1_000_000)
    over = client.submit("echo", "x" * (MAX_RESULT + 10))
    under = client.submit("echo", "y" * (MAX_RESULT - 100))
    for handle in (huge, over):
        row = final_row(client, handle.id)
        assert row["status"] == "failed", row
        assert row["error"]["type"] == "ResultTooLarge", row["error"]
        assert str(MAX_RESULT) in row["error"]["message"]
        assert row["result"] is None
        assert row["attempts"] == 1, "a result too large is not retried"
    assert final_row(client, under.id)["result"] == "y" * (MAX_RESULT - 100)
    after = [client.submit("add", i, 1) for i in range(10)]
    for i, handle in enumerate(before):
        assert handle.result(timeout=60) == 2 * i
    for i, handle in enumerate(after):
        assert handle.result(timeout=60) == i + 1
    assert len(cluster.running()) == 2
    for w in cluster.running():
        assert w.starts == 1
        assert httpx.get(w.url + "/health", timeout=5).json()["status"] == "ok"
        for handle in (huge, over):  # every worker answers the same
            assert httpx.get(f"{w.url}/tasks/{handle.id}", timeout=10).json()["error"]["type"] == "ResultTooLarge"


def test_a_worker_whose_producer_fails_exits_and_its_tasks_move(cluster_factory: Any, tmp_path: Any) -> None:
    cluster = cluster_factory(partitions=4).start(2)
    client = Client(cluster.running()[0].url)
    handle = client.submit("tests.break_producer", str(tmp_path / "broke-once"))

    def one_exited() -> Any:
        gone = [w for w in cluster.workers if not w.alive]
        return gone[0] if gone else None

    dead = wait_for(one_exited, timeout=30, message="the worker with the broken producer to exit")
    assert dead.proc.returncode == 70, dead.tail()
    survivor = cluster.running()[0]
    client = Client(survivor.url)
    assert client.task(handle.id).result(timeout=60) in ("broke", "spared")
    assert [client.submit("add", i, i).result(timeout=60) for i in range(5)] == [0, 2, 4, 6, 8]
    assert survivor.alive
