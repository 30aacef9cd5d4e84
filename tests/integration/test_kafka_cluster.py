"""The 3-node Apache Kafka of the tests (``kafka3``): its own failover, as ``LocalKafka`` reports it."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.test_core import wait_all_finished
from tests.support.brokers import KAFKA_WORKER_ENV
from tests.support.cluster import Cluster
from tests.support.kafka import new_topic
from tests.support.wait import wait_for
from yadtq_app import Client
from yadtq_app.kafka_local import LocalKafka

pytestmark = pytest.mark.integration


def create_topic(kafka: LocalKafka, partitions: int) -> str:
    return asyncio.run(new_topic(kafka.bootstrap, "k3", partitions, 3))


def test_a_killed_controller_is_replaced_and_its_partitions_move_until_it_rejoins(kafka3: LocalKafka) -> None:
    everyone = kafka3.node_ids()
    topic = create_topic(kafka3, 6)
    wait_for(lambda: all(isr == everyone for isr in kafka3.in_sync_replicas(topic).values()), timeout=30,
             interval=0.2, message="every replica in sync")
    assert set(kafka3.partition_leaders(topic).values()) <= set(everyone)

    controller = kafka3.active_controller()
    victim = everyone.index(controller)
    kafka3.kill_node(victim)
    assert kafka3.pids[victim] is None

    # The quorum elects another leader, and the dead broker loses leadership and its
    # place among the in-sync replicas.
    wait_for(lambda: kafka3.active_controller() not in (controller,), timeout=30, interval=0.5,
             message="another active controller")
    wait_for(lambda: all(leader not in (None, controller) for leader in kafka3.partition_leaders(topic).values()),
             timeout=30, interval=0.2, message="the partitions to get living leaders")
    wait_for(lambda: all(controller not in isr for isr in kafka3.in_sync_replicas(topic).values()), timeout=30,
             interval=0.2, message="the dead broker to leave the in-sync replicas")

    kafka3.start_node(victim)
    assert kafka3.pids[victim] is not None
    wait_for(lambda: all(isr == everyone for isr in kafka3.in_sync_replicas(topic).values()), timeout=60,
             interval=0.2, message="the restarted broker back in sync")


def test_tasks_accepted_while_a_broker_is_down_all_run(kafka3: LocalKafka, tmp_path: Path,
                                                         request: pytest.FixtureRequest) -> None:
    """Replication factor 3, min.insync.replicas 2, acks=all: with the broker that leads
    most task partitions killed, tasks already accepted and tasks submitted meanwhile
    all run, once, with the right results."""
    env = {**KAFKA_WORKER_ENV, "YADTQ_REPLICATION_FACTOR": "3", "YADTQ_MIN_INSYNC_REPLICAS": "2"}
    cluster = Cluster(kafka3.url, tmp_path / "cluster", extra_env=env)
    request.node.yadtq_clusters = [cluster]  # worker logs in the report of a failure
    try:
        cluster.start(2)
        assert set(kafka3.in_sync_replicas(cluster.task_topic)[0]) == set(kafka3.node_ids())
        client = Client(cluster.workers[0].url)
        before = [client.submit("add", i, i).id for i in range(40)]
        wait_all_finished(cluster, before)
        leaders = Counter(kafka3.partition_leaders(cluster.task_topic).values())
        victim = kafka3.node_ids().index(leaders.most_common(1)[0][0])
        queued = [client.submit("sleep", 0.05).id for _ in range(20)]
        kafka3.kill_node(victim)
        try:
            during = [client.submit("add", i, 1).id for i in range(40)]
            done = wait_all_finished(cluster, before + queued + during, timeout=120)
        finally:
            kafka3.start_node(victim)
        assert [done[t]["result"] for t in before] == [2 * i for i in range(40)]
        assert [done[t]["result"] for t in during] == [i + 1 for i in range(40)]
        assert all(done[t]["status"] == "success" and done[t]["attempts"] == 1 for t in queued)
    finally:
        cluster.stop()
