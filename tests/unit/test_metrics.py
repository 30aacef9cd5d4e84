"""yadtq_app.metrics: labels stay bounded, the exposition parses, scrape-time gauges."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from yadtq_app.metrics import UNREGISTERED, Metrics
from yadtq_app.registry import TaskRegistry
from yadtq_app.worker_memory import WorkerStats


def make_app() -> Any:
    registry = TaskRegistry()
    registry.register(lambda a, b: a + b, name="add")
    return SimpleNamespace(registry=registry, stats=WorkerStats(), settings=SimpleNamespace(task_topic="tasks"),
                           group_lag=SimpleNamespace(last={}))


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_task_name_no_worker_registers_is_not_a_label() -> None:
    metrics = Metrics(make_app())
    assert metrics.task_label("add") == "add"
    for name in ("os.system", "x" * 10_000, None):
        assert metrics.task_label(name) == UNREGISTERED
    metrics.attempt_ended("os.system", "failed", 0.5)
    metrics.attempt_ended("add", "success", 0.002)
    got = samples(metrics)
    assert got[("yadtq_task_attempts_total", (("outcome", "failed"), ("task", UNREGISTERED)))] == 1
    assert got[("yadtq_task_duration_seconds_count", (("task", "add"),))] == 1
    assert not any("os.system" in v for (_, labels) in got for _, v in labels)


def test_lag_is_the_groups_last_reading_for_every_partition() -> None:
    app = make_app()
    metrics = Metrics(app)
    assert not [k for k in samples(metrics) if k[0] == "yadtq_consumer_lag"]  # nothing read yet: no series
    app.group_lag.last = {1: 0, 0: 4, 2: 7}
    got = samples(metrics)
    assert [(k[1][0][1], v) for k, v in got.items() if k[0] == "yadtq_consumer_lag"] == [("0", 4), ("1", 0), ("2", 7)]


def test_in_progress_and_heartbeat_ages_are_read_at_scrape_time() -> None:
    app = make_app()
    metrics = Metrics(app)
    app.stats.in_progress = 3
    metrics.workers_seen([{"id": "w1", "last_heartbeat": time.time() - 5}, {"id": None}, {"nothing": 1}])
    got = samples(metrics)
    assert got[("yadtq_tasks_in_progress", ())] == 3
    assert 4 < got[("yadtq_worker_heartbeat_age_seconds", (("worker", "w1"),))] < 60
    assert len([k for k in got if k[0] == "yadtq_worker_heartbeat_age_seconds"]) == 1
