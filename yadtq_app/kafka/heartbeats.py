"""Whether the worker is still in touch with its consumer group.

:func:`track_heartbeats` records each successful group heartbeat in :class:`Heartbeats`
(the agents hold back once they stop: ``YadtqApp.in_touch``); :func:`membership_lost`
says whether the group evicted the consumer. Why: ``docs/brokers.md``, "Heartbeats".
"""

from __future__ import annotations

import time
from typing import Optional

import aiokafka
from aiokafka.protocol.group import JoinGroupRequest

from . import private

__all__ = ["Heartbeats", "track_heartbeats", "membership_lost", "UNKNOWN_MEMBER_ID"]

UNKNOWN_MEMBER_ID = JoinGroupRequest.UNKNOWN_MEMBER_ID


class Heartbeats:
    """When the consumer's group heartbeat last succeeded (monotonic s; written by the
    consumer's coordinator, read by the agents)."""

    def __init__(self) -> None:
        self.last_ok = time.monotonic()

    def age(self) -> float:
        """Seconds since the last successful heartbeat."""
        return time.monotonic() - self.last_ok


def track_heartbeats(consumer: aiokafka.AIOKafkaConsumer, heartbeats: Heartbeats) -> None:
    """Record each successful group heartbeat of a started ``consumer`` in ``heartbeats``."""
    coordinator = private.consumer_coordinator(consumer)
    beat = private.heartbeat_call(coordinator)

    async def do_heartbeat() -> bool:
        ok: bool = await beat()
        if ok:
            heartbeats.last_ok = time.monotonic()
        return ok

    private.replace_heartbeat_call(coordinator, do_heartbeat)


def membership_lost(consumer: Optional[aiokafka.AIOKafkaConsumer]) -> bool:
    """True once the broker no longer knows ``consumer`` (evicted, not yet rejoined):
    its offset commits fail from then on. False before it starts."""
    if consumer is None:
        return False
    coordinator = private.consumer_coordinator(consumer)
    return coordinator is not None and bool(coordinator.member_id == UNKNOWN_MEMBER_ID)
