"""On Apache Kafka the table changelogs are compacted: a row's superseded versions go
away, its latest survives, and a worker with a wiped data dir rebuilds it from there."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.support.kafka import read_all
from tests.support.wait import wait_for
from yadtq_app import Client

pytestmark = [pytest.mark.integration, pytest.mark.kafka_only]


def topic_configs(bootstrap: str, topic: str, changes: dict[str, str] | None = None) -> dict[str, str]:
    """The topic's configuration, after applying ``changes`` if given."""
    async def run() -> dict[str, str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            if changes:
                await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, changes)])
            [resp] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            return {entry[0]: entry[1] for entry in resp.resources[0][4]}
        finally:
            await admin.close()

    return asyncio.run(run())


def test_superseded_rows_are_compacted_away_and_the_latest_survives_a_rebuild(cluster_factory: Any,
                                                                              broker: Any) -> None:
    cluster = cluster_factory(partitions=1).start(1)
    [worker] = cluster.workers
    changelog = f"{cluster.app_id}-task-status-changelog"
    assert topic_configs(broker.bootstrap, changelog)["cleanup.policy"] == "compact"
    client = Client(worker.url)
    task_id = f"compact-{cluster.tag}"
    client.submit("tests.fail", "boom", task_id=task_id)
    wait_for(lambda: client.get_task(task_id)["status"] == "failed", timeout=30, message="the task to fail")
    for generation in range(1, 4):  # each retry writes the row again (queued, then failed)
        before = client.get_task(task_id)["finished_at"]
        client.retry(task_id)
        # Failed again: a later end (the row read right after the retry may still be the old one).
        wait_for(lambda before=before: (lambda r: r["status"] == "failed" and r["finished_at"] > before)(
            client.get_task(task_id)), timeout=30, message=f"retry {generation} to fail")
    versions = [r for r in read_all(broker.bootstrap, changelog) if r.key == task_id.encode()]
    assert len(versions) >= 6, len(versions)
    latest = client.get_task(task_id)
    # Small segments and an eager cleaner on this topic, then a record in a new segment
    # so that the old one is closed and can be cleaned.
    # (AlterConfigs replaces a topic's whole configuration: the policy is given again.)
    topic_configs(broker.bootstrap, changelog, {"cleanup.policy": "compact", "segment.ms": "500",
                                                "min.cleanable.dirty.ratio": "0.001",
                                                "min.compaction.lag.ms": "0", "delete.retention.ms": "1000"})

    def compacted() -> bool:
        client.submit("add", 1, 2).result(timeout=30)  # appends, so a segment past 500 ms rolls
        return len([r for r in read_all(broker.bootstrap, changelog) if r.key == task_id.encode()]) == 1

    wait_for(compacted, timeout=120, interval=1.0, message="the cleaner to compact the changelog")
    worker.stop()
    worker.wipe()
    worker.start()
    worker.wait_healthy(90)
    cluster.wait_settled(timeout=90)
    rebuilt = httpx.get(f"{worker.url}/tasks/{task_id}", timeout=30)
    assert rebuilt.status_code == 200 and rebuilt.json() == latest
