"""A fresh, empty broker for one measurement: the embedded one or Apache Kafka (one node).

The embedded broker is ``yadtq_app.broker.EmbeddedBroker`` (Tansu, in memory); Apache
Kafka is one KRaft node from ``bench/apache_kafka.py`` (the bench's broker settings, each
JVM bounded by ``timeout``). The embedded broker is not bounded by anything of its own:
callers put its pid (``BenchBroker.pids``) under a ``bench.common.Reaper``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from bench.apache_kafka import KAFKA_PROFILE_ENV, start_kafka
from tests.support.brokers import TestBroker
from tests.support.cluster import free_port
from yadtq_app.broker import EmbeddedBroker
from yadtq_app.kafka_local import LocalKafka

__all__ = ["BROKERS", "BenchBroker", "start_broker"]

logger = logging.getLogger(__name__)

#: The brokers measured: the embedded one (Tansu) and Apache Kafka (one node).
BROKERS = ("embedded", "kafka")


class BenchBroker(TestBroker):
    """A running broker (the tests' :class:`TestBroker`), and its processes."""

    @property
    def pids(self) -> list[int]:
        """The broker's processes (Tansu, or each running JVM)."""
        if isinstance(self.server, LocalKafka):
            return [p for p in self.server.pids if p is not None]
        assert self.server.process is not None
        return [self.server.process.pid]


def start_broker(kind: str, workdir: Path, *, lifetime: float) -> BenchBroker:
    """A fresh ``kind`` broker (``embedded`` or ``kafka``) keeping its data and log in
    ``workdir``, ready for clients; a Kafka JVM dies after ``lifetime`` seconds regardless."""
    if kind not in BROKERS:
        raise ValueError(f"broker {kind!r} is not one of {', '.join(BROKERS)}")
    workdir.mkdir(parents=True, exist_ok=True)
    if kind == "kafka":
        t0 = time.monotonic()
        kafka = start_kafka(workdir / "kafka", lifetime=lifetime)
        logger.info("Apache Kafka (1 node) ready in %.1f s", time.monotonic() - t0)
        return BenchBroker(kind, kafka, dict(KAFKA_PROFILE_ENV))
    embedded = EmbeddedBroker("127.0.0.1", free_port(), log_path=str(workdir / "broker.log")).start()
    return BenchBroker(kind, embedded)
