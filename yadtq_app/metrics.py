"""One worker's Prometheus metrics (``GET /metrics``), kept with ``prometheus-client``.

Counters and histograms are updated where the work happens (the task agent, the
HTTP middleware, the rebalance signal); gauges that describe the worker's state now
(tasks in progress, consumer lag, other workers' heartbeat ages) are read when
Prometheus scrapes. Label values are bounded: task names are registered names (any
other name is ``unregistered``), reasons come from yadtq's own lists, routes are
route patterns (``/tasks/{id}``), never a task id.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

if TYPE_CHECKING:  # pragma: no cover
    from .application import YadtqApp

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]

#: Task durations (s): from sub-millisecond no-ops to the default time limit.
#: Batch sizes of the task agent (task messages; ``agents.batches.BATCH_MAX`` is 256).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, float("inf"))
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, float("inf"))
#: HTTP answers (s): long polls wait up to a minute.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, float("inf"))
#: The ``task`` label of a message naming no registered task.
UNREGISTERED = "unregistered"


class Metrics:
    """The metrics of ``app``'s worker, in a registry of their own."""

    def __init__(self, app: YadtqApp) -> None:
        self.app = app
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        self.received = Counter("yadtq_tasks_received", "Task messages this worker's task agent took, by task.",
                                ["task"], registry=r)
        self.attempts = Counter("yadtq_task_attempts",
                                "Attempts that ended on this worker, by task and outcome "
                                "(success, failed, retrying, cancelled).", ["task", "outcome"], registry=r)
        self.duration = Histogram("yadtq_task_duration_seconds", "How long attempts ran on this worker, by task.",
                                  ["task"], buckets=DURATION_BUCKETS, registry=r)
        self.batches = Histogram("yadtq_task_batch_messages",
                                 "Task messages the task agent took up together, per batch.",
                                 buckets=BATCH_BUCKETS, registry=r)
        self.dead_letters = Counter("yadtq_dead_letters", "Dead letters this worker wrote, by reason.",
                                    ["reason"], registry=r)
        self.invalid = Counter("yadtq_invalid_messages", "Task messages refused as invalid, by reason.",
                               ["reason"], registry=r)
        self.rebalances = Counter("yadtq_rebalances", "Partition assignments this worker received.", registry=r)
        self.http_requests = Counter("yadtq_http_requests", "HTTP requests answered, by route, method and status.",
                                     ["route", "method", "status"], registry=r)
        self.http_duration = Histogram("yadtq_http_request_duration_seconds", "HTTP answer times, by route.",
                                       ["route"], buckets=HTTP_BUCKETS, registry=r)
        in_progress = Gauge("yadtq_tasks_in_progress", "Attempts running on this worker now.", registry=r)
        in_progress.set_function(lambda: app.stats.in_progress)
        self._workers: list[dict[str, Any]] = []
        #: Labelled children already made, by metric and label values (all bounded, above):
        #: ``labels()`` takes a lock and builds a key on every call, once or more per task.
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r.register(_StateCollector(self))

    def _child(self, metric: Any, *values: str) -> Any:
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def task_label(self, name: Optional[str]) -> str:
        """``name`` if it is a registered task, else ``unregistered``."""
        return name if name is not None and name in self.app.registry else UNREGISTERED

    def task_received(self, task: str) -> None:
        """Count a task message of the registered task ``task``."""
        self._child(self.received, task).inc()

    def attempt_ended(self, task: str, outcome: str, seconds: float) -> None:
        label = self.task_label(task)
        self._child(self.attempts, label, outcome).inc()
        self._child(self.duration, label).observe(seconds)

    def workers_seen(self, rows: Iterable[dict[str, Any]]) -> None:
        """Keep the last ``GET /workers`` list, for the heartbeat ages."""
        self._workers = list(rows)

    async def refresh(self) -> None:
        """Read what the scrape reports from the broker (the group's lag)."""
        await self.app.group_lag.read()

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """Gauges read at scrape time: the group's lag per task partition (as last read,
    :meth:`Metrics.refresh` reads it again), and the age of every worker's last heartbeat."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        app = self.metrics.app
        lag = GaugeMetricFamily("yadtq_consumer_lag",
                                "Task messages not yet done in each task partition (end offset - the group's "
                                "committed offset), read from the broker: every worker reports every partition.",
                                labels=["partition"])
        for partition, n in sorted(app.group_lag.last.items()):
            lag.add_metric([str(partition)], n)
        yield lag
        ages = GaugeMetricFamily("yadtq_worker_heartbeat_age_seconds",
                                 "Seconds since each worker's last heartbeat, as this worker last heard.",
                                 labels=["worker"])
        now = time.time()
        for row in self.metrics._workers:
            if isinstance(row.get("id"), str) and isinstance(row.get("last_heartbeat"), (int, float)):
                ages.add_metric([row["id"]], max(now - row["last_heartbeat"], 0.0))
        yield ages
