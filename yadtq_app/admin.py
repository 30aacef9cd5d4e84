"""Create yadtq's topics before any agent subscribes to them.

Faust does not create an agent's source topic, and a broker that auto-creates topics
gives them its own partition count, which breaks co-partitioning with the tables
(``PartitionsMismatch``). So every topic is created here, explicitly, with the
configured partition count; an existing topic with another count is an error the
user must fix, not something to paper over.

Every topic gets the configured replication factor and the broker profile's topic
configs (on Kafka, ``min.insync.replicas`` when ``YADTQ_MIN_INSYNC_REPLICAS`` is set);
table changelogs are compacted. The admin client authenticates like Faust's clients:
callers pass :func:`yadtq_app.security.client_options` as ``client_options``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from .errors import ConfigurationError

__all__ = ["TopicSpec", "topic_specs", "ensure_topics", "describe_topics"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    """A topic yadtq needs: name, partitions, replication and topic configs."""

    name: str
    partitions: int
    replication_factor: int = 1
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(topics: Mapping[str, int], *, replication_factor: int, config: Optional[Mapping[str, str]] = None,
                compacted: Iterable[str] = ()) -> list[TopicSpec]:
    """Specs for ``topics`` (name → partitions): one replication factor and config for all,
    plus ``cleanup.policy=compact`` for the ``compacted`` ones (table changelogs)."""
    compact = set(compacted)
    return [TopicSpec(name, partitions, replication_factor,
                      {**(config or {}), **({"cleanup.policy": "compact"} if name in compact else {})})
            for name, partitions in topics.items()]


async def ensure_topics(bootstrap_servers: str, specs: Iterable[TopicSpec], *, timeout_ms: int = 30000,
                        client_options: Optional[Mapping[str, Any]] = None) -> None:
    """Create the missing topics; check that existing ones have the right partition count."""
    specs = list(specs)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=timeout_ms,
                                **dict(client_options or {}))
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
                response = await admin.create_topics([NewTopic(spec.name, spec.partitions, spec.replication_factor,
                                                               topic_configs=dict(spec.config))])
                _raise_for_creation_error(spec, response)
                logger.info("created topic %s (%d partitions, replication factor %d%s)", spec.name,
                            spec.partitions, spec.replication_factor,
                            "".join(f", {k}={v}" for k, v in sorted(spec.config.items())))
            except TopicAlreadyExistsError:
                pass  # another worker was first
    finally:
        await admin.close()


def _raise_for_creation_error(spec: TopicSpec, response: Any) -> None:
    """aiokafka returns per-topic errors instead of raising them: raise them here.

    Without this a topic the cluster refused (a replication factor above the number of
    brokers, a ``min.insync.replicas`` above the replication factor, a policy) was
    logged as created and the worker failed later, far from the cause.
    """
    for entry in getattr(response, "topic_errors", ()):
        code = entry[1]
        if code in (0, TopicAlreadyExistsError.errno):
            continue
        message = entry[2] if len(entry) > 2 and entry[2] else ""
        raise ConfigurationError(
            f"the broker refused to create topic {entry[0]!r} ({spec.partitions} partitions, replication "
            f"factor {spec.replication_factor}, config {spec.config}): {for_code(code).__name__}"
            f"{': ' + message if message else ''}; check YADTQ_PARTITIONS, YADTQ_REPLICATION_FACTOR "
            f"and YADTQ_MIN_INSYNC_REPLICAS against the cluster")


async def describe_topics(bootstrap_servers: str, names: Iterable[str], *,
                          client_options: Optional[Mapping[str, Any]] = None) -> dict[str, int]:
    """Partition count of each named topic that exists."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **dict(client_options or {}))
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
