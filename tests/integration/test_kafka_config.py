"""Settings a Kafka cluster cannot honour are a clear error naming the setting."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.kafka_only]


def test_a_replication_factor_above_the_brokers_stops_the_worker_naming_the_setting(cluster_factory: Any) -> None:
    cluster = cluster_factory(extra_env={"YADTQ_REPLICATION_FACTOR": "3"})  # one broker here
    [worker] = cluster.add(1)
    wait_for(lambda: not worker.alive, timeout=90, message="the worker to give up")
    assert worker.proc.returncode != 0
    log = worker.log_text()
    assert "refused to create topic" in log and "YADTQ_REPLICATION_FACTOR" in log, worker.tail()
