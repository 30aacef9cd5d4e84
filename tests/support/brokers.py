"""The brokers the integration tests run on: the embedded one and Apache Kafka (KRaft).

A :class:`TestBroker` carries what a test needs to reach its broker: the URL and bootstrap
list, and the environment workers need on it besides the URL (on Kafka, the ``kafka``
profile: loopback addresses select the embedded one otherwise).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional, Union

import pytest

from yadtq_app.broker import EmbeddedBroker
from yadtq_app.kafka_local import LocalKafka
from yadtq_app.kafka_local_nodes import missing_requirements

#: ``YADTQ_REQUIRE_KAFKA=1`` (CI sets it): a machine that cannot run Kafka fails the run
#: instead of skipping the Kafka half.
REQUIRE_KAFKA = "YADTQ_REQUIRE_KAFKA"

#: Broker settings for quick tests, not for production: an empty group's first rebalance
#: without Kafka's 3 s wait for more members, the 2 s sessions the workers use below (Kafka
#: refuses sessions under 6 s by default), and fewer offsets partitions to create at the
#: first join (50 by default).
KAFKA_TEST_SETTINGS: dict[str, object] = {
    "group.initial.rebalance.delay.ms": 0,
    "group.min.session.timeout.ms": 1000,
    "offsets.topic.num.partitions": 10,
    # The log cleaner looks for work every second (15 s by default): the compaction test
    # waits for it.
    "log.cleaner.backoff.ms": 1000,
}
#: And for tests that kill brokers: a dead broker is fenced (its partitions get new
#: leaders) after 3 s without a heartbeat instead of 9 s, and drops out of the in-sync
#: replicas after 5 s instead of 30.
KAFKA3_TEST_SETTINGS: dict[str, object] = {
    **KAFKA_TEST_SETTINGS,
    "broker.heartbeat.interval.ms": 500,
    "broker.session.timeout.ms": 3000,
    "replica.lag.time.max.ms": 5000,
}
#: What workers on the test Kafka need: its profile, and the same short consumer-group
#: session as on the embedded broker, so failover tests take the same time on both
#: (the kafka profile's own 45 s is for production networks).
KAFKA_WORKER_ENV = {"YADTQ_BROKER_PROFILE": "kafka", "YADTQ_SESSION_TIMEOUT": "2", "YADTQ_CONSUMER_HEARTBEAT": "0.5"}
#: No test session outlives this; neither do its Kafka JVMs, whatever happens to pytest (s).
KAFKA_MAX_LIFETIME = 3 * 3600.0


@dataclass
class TestBroker:
    """A running broker as the tests see it."""

    __test__ = False  # not a test class, despite its name

    kind: str  # "embedded" or "kafka"
    server: Union[EmbeddedBroker, LocalKafka]
    #: Variables workers need on this broker besides ``YADTQ_BROKER_URL``.
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def bootstrap(self) -> str:
        return self.server.bootstrap

    def stop(self) -> None:
        self.server.stop()


def kafka_or_skip() -> None:
    """Skip the test (fail it under ``YADTQ_REQUIRE_KAFKA=1``) if Kafka cannot run here."""
    problem: Optional[str] = missing_requirements()
    if problem is None:
        return
    if os.environ.get(REQUIRE_KAFKA) == "1":
        pytest.fail(f"{problem} (and {REQUIRE_KAFKA}=1)", pytrace=False)
    pytest.skip(f"Apache Kafka half skipped: {problem}")
