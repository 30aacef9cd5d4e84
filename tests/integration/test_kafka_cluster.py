"""The 3-node Apache Kafka of the tests (``kafka3``): its own failover, as ``LocalKafka`` reports it."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.support.wait import wait_for
from yadtq_app.kafka_local import LocalKafka

pytestmark = pytest.mark.integration


def create_topic(kafka: LocalKafka, partitions: int) -> str:
    topic = f"k3-{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, partitions, 3)])
        finally:
            await admin.close()

    asyncio.run(create())
    return topic


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
