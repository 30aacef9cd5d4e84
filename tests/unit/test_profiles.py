"""Broker profiles: Faust options and transport choice (no broker is contacted)."""

from __future__ import annotations

from typing import Any

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka

from yadtq_app.errors import ConfigurationError
from yadtq_app.kafka.profiles import (
    FAUST_REQUEST_TIMEOUT,
    KAFKA_HEARTBEAT_INTERVAL,
    KAFKA_SESSION_TIMEOUT,
    BrokerProfile,
    EmbeddedProfile,
    EmbeddedTransport,
    profile_for,
)
from yadtq_app.settings import Settings

KAFKA = "kafka://kafka-1:9092"


def remedies(transport: type) -> tuple[int, int, bool]:
    """(idle fetch wait, busy fetch wait, fix_end_offsets) of a transport class (its class attributes)."""
    return transport.fetch_max_wait_ms, transport.busy_fetch_max_wait_ms, transport.fix_end_offsets  # type: ignore[attr-defined]


def test_default_settings_get_embedded_profile() -> None:
    p = profile_for(Settings())
    assert type(p) is EmbeddedProfile and p.name == "embedded"
    opts = p.faust_options()
    assert opts["broker_session_timeout"] == 2.0
    assert opts["broker_heartbeat_interval"] == 0.5
    # Long enough for a busy worker to finish its in-flight tasks and rejoin.
    assert opts["broker_rebalance_timeout"] == 10.0
    assert opts["producer_acks"] == -1
    assert opts["topic_partitions"] == 8 and opts["topic_replication_factor"] == 1


def test_kafka_profile_options() -> None:
    p = profile_for(Settings(broker_url=KAFKA))
    assert type(p) is BrokerProfile and p.name == "kafka"
    assert p.faust_options() == {
        # Apache Kafka's consumer defaults since 3.0 (KIP-735), not the embedded broker's 2 s / 0.5 s.
        "broker_session_timeout": 45.0, "broker_heartbeat_interval": 3.0,
        "broker_rebalance_timeout": 60.0,  # Faust's default
        "producer_acks": -1,  # acks=all
        "topic_partitions": 8, "topic_replication_factor": 1,
    }
    assert p.topic_config() == {}  # the broker's min.insync.replicas unless set


def test_kafka_profile_takes_partitions_replication_and_min_isr_from_settings() -> None:
    p = profile_for(Settings(broker_url=KAFKA, partitions=24, replication_factor=3, min_insync_replicas=2))
    opts = p.faust_options()
    assert opts["topic_partitions"] == 24 and opts["topic_replication_factor"] == 3
    assert opts["producer_acks"] == -1
    assert p.topic_config() == {"min.insync.replicas": "2"}


def test_kafka_profile_sets_nothing_else() -> None:
    # Faust's defaults otherwise: nothing about fetching, batching, standby replicas, ...
    opts = profile_for(Settings(broker_url=KAFKA)).faust_options()
    assert set(opts) == {"broker_session_timeout", "broker_heartbeat_interval", "broker_rebalance_timeout",
                         "producer_acks", "topic_partitions", "topic_replication_factor"}


def test_kafka_profile_defaults_fit_kafka_and_faust_limits() -> None:
    session, heartbeat = BrokerProfile(Settings(broker_url=KAFKA)).timeouts()
    assert 6.0 <= session <= FAUST_REQUEST_TIMEOUT  # group.min.session.timeout.ms .. Faust's request timeout
    assert heartbeat <= session / 3  # Kafka: heartbeat.interval.ms at most a third of the session
    assert (session, heartbeat) == (KAFKA_SESSION_TIMEOUT, KAFKA_HEARTBEAT_INTERVAL) == (45.0, 3.0)


def test_embedded_profile_sends_no_min_isr() -> None:
    p = profile_for(Settings(replication_factor=1, min_insync_replicas=1))
    assert type(p) is EmbeddedProfile and p.topic_config() == {}
    assert p.faust_options()["topic_partitions"] == 8


@pytest.mark.parametrize("kwargs, match", [
    ({"session_timeout": 10.0, "heartbeat_timeout": 10.0}, "YADTQ_CONSUMER_HEARTBEAT"),
    ({"heartbeat_timeout": 50.0}, "shorter than the session timeout"),
    ({"session_timeout": 120.0}, "request timeout"),
])
def test_bad_consumer_timeouts_are_configuration_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        profile_for(Settings(broker_url=KAFKA, **kwargs)).faust_options()


def test_explicit_profile_setting_chooses_class() -> None:
    assert type(profile_for(Settings(broker_profile="kafka"))) is BrokerProfile
    assert type(profile_for(Settings(broker_url=KAFKA, broker_profile="embedded"))) is EmbeddedProfile


def test_kafka_timeouts_overridden_by_settings() -> None:
    opts = profile_for(Settings(broker_url=KAFKA, session_timeout=10.0, heartbeat_timeout=1.0)).faust_options()
    assert opts["broker_session_timeout"] == 10.0
    assert opts["broker_heartbeat_interval"] == 1.0
    assert opts["broker_rebalance_timeout"] == 60.0  # never below Faust's default
    opts = profile_for(Settings(broker_url=KAFKA, session_timeout=90.0)).faust_options()
    assert opts["broker_rebalance_timeout"] == 90.0
    opts = profile_for(Settings(broker_url=KAFKA, session_timeout=6.0)).faust_options()
    assert opts["broker_session_timeout"] == 6.0 and opts["broker_heartbeat_interval"] == 3.0


def test_embedded_timeouts_overridden_by_settings() -> None:
    opts = profile_for(Settings(session_timeout=10.0, heartbeat_timeout=2.0)).faust_options()
    assert opts["broker_session_timeout"] == 10.0
    assert opts["broker_heartbeat_interval"] == 2.0
    assert opts["broker_rebalance_timeout"] == 10.0


def test_embedded_transport_replaces_consumer() -> None:
    transport = profile_for(Settings()).transport_class()
    assert transport is not None
    assert issubclass(transport, faust_aiokafka.Transport)
    assert transport.Consumer is not faust_aiokafka.Consumer
    assert issubclass(transport.Consumer, faust_aiokafka.Consumer)
    assert faust_aiokafka.Transport.Consumer is faust_aiokafka.Consumer  # the stock class is untouched
    # 10 ms while idle, 3 ms while tasks flow (yadtq_app.kafka.fetch_wait.FetchWait)
    assert remedies(transport) == (10, 3, True)
    assert remedies(EmbeddedTransport) == (10, 3, True)


def test_embedded_transport_honours_settings() -> None:
    transport = profile_for(Settings(fetch_max_wait_ms=50, fix_end_offsets=False)).transport_class()
    assert remedies(transport) == (50, 3, False)
    transport = profile_for(Settings(fetch_max_wait_ms=50, busy_fetch_max_wait_ms=7)).transport_class()
    assert remedies(transport) == (50, 7, True)
    # an idle wait below the busy one is both
    assert remedies(profile_for(Settings(fetch_max_wait_ms=2)).transport_class()) == (2, 2, True)


@pytest.mark.parametrize("kwargs", [{"fetch_max_wait_ms": 0}, {"busy_fetch_max_wait_ms": 0}])
def test_embedded_profile_refuses_a_zero_fetch_wait(kwargs: dict[str, Any]) -> None:
    # The embedded broker's fetch loop never runs with a 0 ms wait: every fetch is empty.
    with pytest.raises(ConfigurationError, match="empty"):
        profile_for(Settings(**kwargs)).transport_class()


def test_kafka_transport_keeps_faust_defaults() -> None:
    # Always yadtq's consumer (for the seek fix every broker needs), with the profile's
    # fetch wait (not Faust's 1.5 s) and no end-offset remedy.
    for settings in (Settings(broker_url=KAFKA), Settings(broker_url=KAFKA, fix_end_offsets=False)):
        t = profile_for(settings).transport_class()
        assert t.Consumer is not faust_aiokafka.Consumer
        assert remedies(t) == (1000, 20, False)  # 20 while tasks flow (docs/brokers.md, "Fetch waits")


def test_kafka_transport_when_remedies_requested() -> None:
    t = profile_for(Settings(broker_url=KAFKA, fix_end_offsets=True)).transport_class()
    assert t is not None and t.Consumer is not faust_aiokafka.Consumer
    assert remedies(t) == (1000, 20, True)
    t = profile_for(Settings(broker_url=KAFKA, fetch_max_wait_ms=50)).transport_class()
    assert remedies(t) == (50, 20, False)
    t = profile_for(Settings(broker_url=KAFKA, fetch_max_wait_ms=10)).transport_class()
    assert remedies(t) == (10, 10, False)  # the busy wait never exceeds the idle one
    t = profile_for(Settings(broker_url=KAFKA, busy_fetch_max_wait_ms=200)).transport_class()
    assert remedies(t) == (1000, 200, False)


def test_only_the_embedded_broker_needs_a_fetch_again_after_a_write() -> None:
    # Kafka answers a held fetch when a record arrives; Tansu waits out the fetch's wait.
    assert profile_for(Settings(broker_url=KAFKA)).transport_class().fetch_woken_by_writes is True
    embedded = profile_for(Settings(broker_url="kafka://127.0.0.1:9092")).transport_class()
    assert embedded.fetch_woken_by_writes is False and EmbeddedTransport.fetch_woken_by_writes is False


def test_kafka_transport_honours_zero_fetch_wait() -> None:
    t = profile_for(Settings(broker_url=KAFKA, fetch_max_wait_ms=0)).transport_class()
    assert remedies(t) == (0, 0, False)


def test_the_consumer_uses_the_commit_fix_on_every_profile() -> None:
    for settings in (Settings(), Settings(broker_url=KAFKA)):
        consumer = profile_for(settings).transport_class().Consumer
        assert consumer._new_offset is not faust_aiokafka.Consumer._new_offset
