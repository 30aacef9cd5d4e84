"""Topic specs: replication factor, min.insync.replicas and compaction (no broker is contacted)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from yadtq_app.admin import TopicSpec, _raise_for_creation_error, topic_specs
from yadtq_app.errors import ConfigurationError
from yadtq_app.kafka.profiles import profile_for
from yadtq_app.settings import Settings

KAFKA = "kafka://kafka-1:9092;kafka-2:9092;kafka-3:9092"


def specs_for(settings: Settings) -> dict[str, TopicSpec]:
    """What the worker creates (as YadtqApp.topic_specs does, with one table changelog)."""
    changelog = f"{settings.app_id}-task-status-changelog"
    specs = topic_specs(settings.topics(), replication_factor=settings.replication_factor,
                        config=profile_for(settings).topic_config(), compacted=[changelog])
    return {s.name: s for s in specs}


def test_production_topics_get_replication_and_min_isr() -> None:
    s = Settings(broker_url=KAFKA, partitions=24, replication_factor=3, min_insync_replicas=2)
    specs = specs_for(s)
    assert set(specs) == set(s.topics())
    for spec in specs.values():
        assert spec.replication_factor == 3
        assert spec.config["min.insync.replicas"] == "2"
    assert specs[s.task_topic].partitions == 24 and specs[s.events_topic].partitions == 24
    assert specs[s.heartbeat_topic].partitions == 1
    assert specs["yadtq-task-status-changelog"].config == {"min.insync.replicas": "2", "cleanup.policy": "compact"}
    assert "cleanup.policy" not in specs[s.task_topic].config


def test_without_min_isr_the_broker_default_applies() -> None:
    specs = specs_for(Settings(broker_url=KAFKA, replication_factor=3))
    assert all("min.insync.replicas" not in spec.config for spec in specs.values())


def test_embedded_topics_get_no_min_isr() -> None:
    specs = specs_for(Settings(min_insync_replicas=1))
    assert all(spec.replication_factor == 1 and "min.insync.replicas" not in spec.config for spec in specs.values())


def test_topic_specs_do_not_share_config_dicts() -> None:
    config = {"min.insync.replicas": "2"}
    a, b = topic_specs({"a": 1, "b": 1}, replication_factor=3, config=config, compacted=["a"])
    assert a.config == {"min.insync.replicas": "2", "cleanup.policy": "compact"} and b.config == config
    assert config == {"min.insync.replicas": "2"}


@pytest.mark.parametrize("kwargs", [
    {"replication_factor": 3, "min_insync_replicas": 4},
    {"replication_factor": 1, "min_insync_replicas": 2},
    {"replication_factor": 3, "min_insync_replicas": 0},
])
def test_min_isr_outside_replication_factor_is_rejected(kwargs: dict) -> None:
    with pytest.raises(ConfigurationError, match="YADTQ_MIN_INSYNC_REPLICAS"):
        Settings(broker_url=KAFKA, **kwargs)


def test_min_isr_from_env() -> None:
    s = Settings.from_env({"YADTQ_BROKER_URL": KAFKA, "YADTQ_REPLICATION_FACTOR": "3",
                           "YADTQ_MIN_INSYNC_REPLICAS": "2"})
    assert s.min_insync_replicas == 2 and s.replication_factor == 3
    assert Settings.from_env({}).min_insync_replicas is None
    with pytest.raises(ConfigurationError, match="YADTQ_MIN_INSYNC_REPLICAS"):
        Settings.from_env({"YADTQ_MIN_INSYNC_REPLICAS": "two"})


def test_refused_topic_creation_raises() -> None:
    spec = TopicSpec("task_queue", 8, 3, {"min.insync.replicas": "2"})
    # CreateTopics v1+ answers (topic, error_code, error_message); aiokafka does not raise them.
    message = "Replication factor: 3 larger than available brokers: 1."
    refused = SimpleNamespace(topic_errors=[("task_queue", 38, message)])
    with pytest.raises(ConfigurationError, match="InvalidReplicationFactorError.*larger than available brokers"):
        _raise_for_creation_error(spec, refused)
    with pytest.raises(ConfigurationError, match="InvalidConfigurationError"):
        _raise_for_creation_error(spec, SimpleNamespace(topic_errors=[("task_queue", 40)]))  # v0: no message


def test_created_or_existing_topic_is_fine() -> None:
    spec = TopicSpec("task_queue", 8, 3)
    _raise_for_creation_error(spec, SimpleNamespace(topic_errors=[("task_queue", 0, None)]))
    _raise_for_creation_error(spec, SimpleNamespace(topic_errors=[("task_queue", 36, "already exists")]))
    _raise_for_creation_error(spec, object())  # no topic_errors at all
