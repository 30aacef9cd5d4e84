"""Broker profiles: Faust options and transport choice (no broker is contacted)."""

from __future__ import annotations

import inspect

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka

from yadtq_app.compat import BrokerProfile, EmbeddedProfile, EmbeddedTransport, profile_for
from yadtq_app.settings import Settings

KAFKA = "kafka://kafka-1:9092"


def remedies(transport: type) -> tuple[int, bool]:
    """(fetch_max_wait_ms, fix_end_offsets) baked into a transport made by compat._transport_with."""
    thread_cls = inspect.getclosurevars(transport.Consumer._new_consumer_thread).nonlocals["ConsumerThread"]
    wait = inspect.getclosurevars(thread_cls._create_worker_consumer).nonlocals["fetch_max_wait_ms"]
    fix = inspect.getclosurevars(thread_cls._highwaters).nonlocals["fix_end_offsets"]
    return wait, fix


def test_default_settings_get_embedded_profile() -> None:
    p = profile_for(Settings())
    assert type(p) is EmbeddedProfile and p.name == "embedded"
    opts = p.faust_options()
    assert opts["broker_session_timeout"] == 3.0
    assert opts["broker_heartbeat_interval"] == 0.5
    assert opts["broker_rebalance_timeout"] == 3.0
    assert opts["producer_acks"] == -1


def test_kafka_profile_keeps_faust_defaults() -> None:
    p = profile_for(Settings(broker_url=KAFKA))
    assert type(p) is BrokerProfile and p.name == "kafka"
    assert p.faust_options() == {"broker_session_timeout": 60.0, "broker_heartbeat_interval": 3.0,
                                 "broker_rebalance_timeout": 60.0, "producer_acks": -1}


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
    assert remedies(transport) == (10, True)
    assert remedies(EmbeddedTransport) == (10, True)


def test_embedded_transport_honours_settings() -> None:
    transport = profile_for(Settings(fetch_max_wait_ms=0, fix_end_offsets=False)).transport_class()
    assert remedies(transport) == (0, False)


def test_kafka_transport_keeps_faust_defaults() -> None:
    # Always yadtq's consumer (for the seek fix every broker needs), with Faust's fetch
    # wait and no end-offset remedy.
    for settings in (Settings(broker_url=KAFKA), Settings(broker_url=KAFKA, fix_end_offsets=False)):
        t = profile_for(settings).transport_class()
        assert t.Consumer is not faust_aiokafka.Consumer
        assert remedies(t) == (1500, False)


def test_kafka_transport_when_remedies_requested() -> None:
    t = profile_for(Settings(broker_url=KAFKA, fix_end_offsets=True)).transport_class()
    assert t is not None and t.Consumer is not faust_aiokafka.Consumer
    assert remedies(t) == (1500, True)
    t = profile_for(Settings(broker_url=KAFKA, fetch_max_wait_ms=50)).transport_class()
    assert remedies(t) == (50, False)


def test_kafka_transport_honours_zero_fetch_wait() -> None:
    t = profile_for(Settings(broker_url=KAFKA, fetch_max_wait_ms=0)).transport_class()
    assert remedies(t) == (0, False)
