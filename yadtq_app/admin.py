"""Create yadtq's topics before any agent subscribes to them.

Faust does not create an agent's source topic, and a broker that auto-creates topics
gives them its own partition count, which breaks co-partitioning with the tables
(``PartitionsMismatch``). So every topic is created here, explicitly, with the
configured partition count; an existing topic with another count is an error the
user must fix, not something to paper over.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from .errors import ConfigurationError

__all__ = ["TopicSpec", "ensure_topics", "describe_topics"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    """A topic yadtq needs: name, partitions, replication and topic configs."""

    name: str
    partitions: int
    replication_factor: int = 1
    config: dict[str, str] = field(default_factory=dict)


async def ensure_topics(bootstrap_servers: str, specs: Iterable[TopicSpec], *, timeout_ms: int = 30000) -> None:
    """Create the missing topics; check that existing ones have the right partition count."""
    specs = list(specs)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=timeout_ms)
    await admin.start()
    try:
        existing = await _partition_counts(admin, [s.name for s in specs])
        missing = [s for s in specs if s.name not in existing]
        for spec in specs:
            have = existing.get(spec.name)
            if have is not None and have != spec.partitions:
                raise ConfigurationError(
                    f"topic {spec.name!r} has {have} partitions but yadtq is configured for "
                    f"{spec.partitions}; set YADTQ_PARTITIONS={have} or use a new app id/topic"
                )
        for spec in missing:
            try:
                await admin.create_topics([NewTopic(spec.name, spec.partitions, spec.replication_factor,
                                                    topic_configs=dict(spec.config))])
                logger.info("created topic %s (%d partitions)", spec.name, spec.partitions)
            except TopicAlreadyExistsError:
                pass  # another worker was first
    finally:
        await admin.close()


async def describe_topics(bootstrap_servers: str, names: Iterable[str]) -> dict[str, int]:
    """Partition count of each named topic that exists."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        return await _partition_counts(admin, list(names))
    finally:
        await admin.close()


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    present = set(await admin.list_topics())
    wanted = [n for n in names if n in present]
    if not wanted:
        return {}
    out: dict[str, int] = {}
    for desc in await admin.describe_topics(wanted):
        if desc.get("error_code", 0) == 0:
            out[desc["topic"]] = len(desc.get("partitions", []))
    return out
