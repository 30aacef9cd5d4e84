"""Leaving the consumer group at a stop without waiting for a rebalance in progress.

aiokafka's consumer stop lets its coordination task finish before it sends LeaveGroup.
In a rebalance that task waits on a JoinGroup (or SyncGroup) that the broker holds until
every member has rejoined, so a member that died is waited for until its session ends.
:func:`leave_now` sends the LeaveGroup first, on a connection of its own: a broker answers
one connection's requests in order, so behind the held JoinGroup it would wait too. The
broker then answers the held request at once and the stop goes on. Why:
``docs/brokers.md``, "A rebalance during a stop".
"""

from __future__ import annotations

import asyncio
import logging

import aiokafka
from aiokafka.errors import KafkaError
from aiokafka.protocol.group import LeaveGroupRequest

from . import private
from .heartbeats import membership_lost

__all__ = ["leave_now", "LEAVE_TIMEOUT"]

logger = logging.getLogger(__name__)

#: How long the early LeaveGroup may take (s); the usual stop follows either way.
LEAVE_TIMEOUT = 5.0


async def leave_now(consumer: aiokafka.AIOKafkaConsumer) -> bool:
    """Leave the group at once if ``consumer`` is rejoining it (call in its loop);
    whether the broker took the LeaveGroup. A consumer not rejoining is left as it is."""
    coordinator = private.consumer_coordinator(consumer)
    if coordinator is None or not private.rejoining(coordinator) or coordinator.coordinator_id is None \
            or membership_lost(consumer):
        return False
    request = LeaveGroupRequest(coordinator.group_id, coordinator.member_id)
    try:
        response = await asyncio.wait_for(
            private.consumer_client(consumer).send(coordinator.coordinator_id, request), LEAVE_TIMEOUT)
    except (KafkaError, asyncio.TimeoutError) as exc:
        logger.warning("could not leave group %s during its rebalance (%r); stopping as usual",
                       coordinator.group_id, exc)
        return False
    if response.error_code:
        logger.info("group %s did not take the LeaveGroup sent during its rebalance (error %d); stopping as usual",
                    coordinator.group_id, response.error_code)
        return False
    logger.info("left group %s during its rebalance, without waiting for it", coordinator.group_id)
    coordinator.reset_generation()  # the usual stop sends no second LeaveGroup
    return True
