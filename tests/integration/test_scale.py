"""More workers than partitions: the extra ones stand by, and take over when one dies."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.wait import wait_for
from yadtq_app import Client

pytestmark = pytest.mark.integration


def test_workers_beyond_the_partition_count_stand_by_and_take_over(cluster_factory: Any) -> None:
    cluster = cluster_factory(partitions=2).start(3)
    # Every worker has joined the group (a worker still in its first join also shows no
    # partitions, but is not a standby yet).
    wait_for(lambda: all("Joined group" in w.log_text() for w in cluster.workers), timeout=60,
             message="all three workers to join the group")
    view = cluster.wait_settled()
    busy = [w for w in view if w["partitions"]]
    idle = [w for w in view if not w["partitions"]]
    assert len(busy) == 2 and len(idle) == 1  # one partition each; the third has none
    client = Client(cluster.running()[0].url)
    assert [client.submit("add", i, i).result(timeout=30) for i in range(20)] == [2 * i for i in range(20)]

    victim = next(w for w in cluster.workers if w.worker_id == busy[0]["id"])
    victim.kill()
    survivors = {w.worker_id for w in cluster.running()}

    def taken_over() -> list[dict[str, Any]] | None:
        now = [w for w in cluster.workers_view() if w["alive"] and w["id"] in survivors]
        parts = sorted(p for w in now for p in w["partitions"])
        return now if parts == [0, 1] and all(w["partitions"] for w in now) else None

    wait_for(taken_over, timeout=60, interval=0.2, message="the standby worker to take a partition")
    client = Client(cluster.running()[0].url)
    assert [client.submit("add", i, 1).result(timeout=30) for i in range(10)] == [i + 1 for i in range(10)]
