"""``GET /metrics``, scraped with prometheus-client's own parser around real work."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_core import wait_all_finished
from tests.support.wait import wait_for
from yadtq_app import Client

pytestmark = pytest.mark.integration


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a worker's ``/metrics``: (name, sorted labels) → value."""
    resp = httpx.get(url + "/metrics", timeout=10)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain"), resp.text[:200]
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


def moved(before: dict[Any, float], after: dict[Any, float], name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def lag(samples: dict[Any, float]) -> float:
    return sum(v for (name, _), v in samples.items() if name == "yadtq_consumer_lag")


def test_counters_move_by_exactly_what_a_run_did(cluster_factory: Any, broker: Any) -> None:
    cluster = cluster_factory(partitions=4).start(1)
    [w] = cluster.workers
    client = Client(w.url)
    client.submit("add", 0, 0).result(timeout=60)  # every series of a finished task exists
    before = scrape(w.url)

    ok = [client.submit("add", i, i).id for i in range(7)]
    failing = [client.send_task("divide", (1, 0), max_retries=0).id for _ in range(3)]
    from kafka import KafkaProducer

    kp = KafkaProducer(bootstrap_servers=broker.bootstrap)
    kp.send(cluster.task_topic, key=b"junk", value=b"\xff\xfe not json")
    kp.send(cluster.task_topic, key=b"junk2", value=json.dumps({"task": "os.system", "args": ["id"]}).encode())
    kp.flush()
    kp.close()
    done = wait_all_finished(cluster, ok + failing, timeout=60)
    assert [done[t]["status"] for t in ok] == ["success"] * 7
    assert [done[t]["status"] for t in failing] == ["failed"] * 3

    def counted() -> Any:
        after = scrape(w.url)
        return after if moved(before, after, "yadtq_invalid_messages_total", reason="unknown-task") >= 1 \
            and sum(moved(before, after, k[0], **dict(k[1])) for k in after
                    if k[0] == "yadtq_invalid_messages_total") >= 2 else None

    after = wait_for(counted, timeout=30, interval=0.2, message="both raw records counted")
    assert moved(before, after, "yadtq_tasks_received_total", task="add") == 7
    assert moved(before, after, "yadtq_tasks_received_total", task="divide") == 3
    assert moved(before, after, "yadtq_task_attempts_total", task="add", outcome="success") == 7
    assert moved(before, after, "yadtq_task_attempts_total", task="divide", outcome="failed") == 3
    assert moved(before, after, "yadtq_task_duration_seconds_count", task="add") == 7
    assert moved(before, after, "yadtq_dead_letters_total", reason="failed") == 3
    assert sum(moved(before, after, k[0], **dict(k[1])) for k in after if k[0] == "yadtq_dead_letters_total") == 5
    # No task id became a label, and an unregistered name did not either.
    labels = {v for (_, ls) in after for _, v in ls}
    assert not any(t in labels for t in ok + failing) and "os.system" not in labels
    assert after[("yadtq_tasks_in_progress", ())] == 0
    # HTTP: the status reads above were counted under the route's pattern.
    assert moved(before, after, "yadtq_http_requests_total", route="/tasks", method="POST", status="202") == 10
    # Heartbeat ages: as this worker last heard (GET /workers, once a heartbeat interval).
    age = wait_for(lambda: scrape(w.url).get(("yadtq_worker_heartbeat_age_seconds", (("worker", w.worker_id),))),
                   timeout=30, interval=0.5, message="the worker's own heartbeat age")
    assert 0 <= age < 30


def test_lag_rises_while_the_worker_is_busy_and_falls_when_it_is_done(cluster_factory: Any) -> None:
    cluster = cluster_factory(partitions=2, extra_env={"YADTQ_CONCURRENCY": "1"}).start(1)
    [w] = cluster.workers
    client = Client(w.url)
    client.submit("add", 1, 1).result(timeout=60)
    # Lag counts up to the committed offset, and Faust commits every few seconds.
    wait_for(lambda: lag(scrape(w.url)) == 0, timeout=30, interval=0.2, message="no lag at rest")
    ids = [client.submit("sleep", 0.3).id for _ in range(12)]
    peak = wait_for(lambda: lag(scrape(w.url)) or None, timeout=30, interval=0.1,
                    message="the lag to rise while tasks wait")
    assert peak >= 2
    wait_all_finished(cluster, ids, timeout=60)
    wait_for(lambda: lag(scrape(w.url)) == 0, timeout=30, interval=0.2, message="the lag back to 0")


def test_every_worker_reports_the_lag_of_a_stopped_workers_partitions(cluster_factory: Any) -> None:
    """Lag is the group's, read from the broker: a worker reports it for partitions it
    does not hold, here those of a stopped (SIGSTOP) worker, until they are done."""
    import signal

    # A long session: b's partitions stay b's while it is stopped, so a never holds them.
    cluster = cluster_factory(partitions=4, extra_env={"YADTQ_SESSION_TIMEOUT": "30"}).start(2)
    cluster.wait_settled(timeout=90)
    a, b = cluster.workers
    held_by_b = {str(p) for p in httpx.get(b.url + "/health", timeout=10).json()["partitions"]}
    assert held_by_b
    client = Client(a.url)
    client.submit("add", 1, 1).result(timeout=60)
    wait_for(lambda: lag(scrape(a.url)) == 0, timeout=30, interval=0.2, message="no lag at rest")

    def lag_on_b(samples: dict[Any, float]) -> float:
        return sum(v for (name, labels), v in samples.items()
                   if name == "yadtq_consumer_lag" and dict(labels)["partition"] in held_by_b)

    b.signal(signal.SIGSTOP)
    try:
        ids = [client.submit("add", i, 1).id for i in range(24)]
        wait_for(lambda: lag_on_b(scrape(a.url)) or None, timeout=30, interval=0.1,
                 message="worker a to report lag on worker b's partitions")
    finally:
        b.signal(signal.SIGCONT)
    wait_all_finished(cluster, ids, timeout=90)
    for w in (a, b):
        wait_for(lambda w=w: lag(scrape(w.url)) == 0, timeout=60, interval=0.2, message="the lag back to 0")
