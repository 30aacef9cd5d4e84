"""Apache Kafka for the benchmarks: a fresh ``LocalKafka`` (1 or 3 KRaft nodes) per measurement.

The broker settings below are the bench's own, for a quick start on a fresh cluster; none
of them is a yadtq default, and the workers on it run the ``kafka`` profile as it is
(``YADTQ_BROKER_PROFILE=kafka``: loopback addresses would select the embedded profile).
Each JVM is bounded by ``LocalKafka``'s ``max_lifetime`` (coreutils ``timeout``) and
stopped by its PID.
"""

from __future__ import annotations

from pathlib import Path

from yadtq_app.kafka_local import LocalKafka
from yadtq_app.kafka_local_nodes import missing_requirements

__all__ = ["BENCH_KAFKA_SETTINGS", "KAFKA_PROFILE_ENV", "REPLICATED_ENV", "kafka_problem", "start_kafka"]

#: ``server.properties`` entries for the bench, over LocalKafka's own: an empty group's first
#: rebalance without Kafka's 3 s wait for more members; sessions down to 1 s allowed (the
#: failover bench runs the tests' 2 s session; Kafka refuses under 6 s by default); 10
#: offsets partitions to create at the first join instead of 50.
BENCH_KAFKA_SETTINGS: dict[str, object] = {
    "group.initial.rebalance.delay.ms": 0,
    "group.min.session.timeout.ms": 1000,
    "offsets.topic.num.partitions": 10,
}
#: What a worker on a loopback Apache Kafka needs besides the URL: the kafka profile, unchanged.
KAFKA_PROFILE_ENV = {"YADTQ_BROKER_PROFILE": "kafka"}
#: yadtq's topics on three nodes as the tests make them: three replicas, two in sync for a write.
REPLICATED_ENV = {"YADTQ_REPLICATION_FACTOR": "3", "YADTQ_MIN_INSYNC_REPLICAS": "2"}


def kafka_problem() -> str | None:
    """Why Apache Kafka cannot run here (no java, no jars: ``make kafka-jars``), or ``None``."""
    return missing_requirements()


def start_kafka(data_dir: Path, *, nodes: int = 1, lifetime: float) -> LocalKafka:
    """A fresh Apache Kafka of ``nodes`` KRaft nodes in ``data_dir``, ready; each JVM is
    killed after ``lifetime`` seconds whatever happens to this process."""
    return LocalKafka(nodes, data_dir=data_dir, settings=BENCH_KAFKA_SETTINGS, max_lifetime=lifetime).start()
