"""yadtq on a 3-node Apache Kafka (KRaft; replication factor 3, ``min.insync.replicas`` 2):
workers killed or frozen, brokers killed under load, too few brokers to write.

The cluster is shared by the session (``kafka3``): each test restarts the brokers it
stopped before it ends, and waits until every replica is back in sync.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests.integration.test_core import wait_all_finished
from tests.support.brokers import KAFKA_WORKER_ENV
from tests.support.cluster import Cluster
from tests.support.ledger import Ledger, check, fault_mid_task
from tests.support.wait import wait_for
from yadtq_app import Client
from yadtq_app.kafka_local import LocalKafka

pytestmark = pytest.mark.integration

logger = logging.getLogger(__name__)

REPLICATED = {"YADTQ_REPLICATION_FACTOR": "3", "YADTQ_MIN_INSYNC_REPLICAS": "2"}


@pytest.fixture
def kafka(kafka3: LocalKafka) -> Iterator[LocalKafka]:
    """The shared 3-node cluster, every node running again after the test."""
    yield kafka3
    for i, pid in enumerate(kafka3.pids):
        if pid is None:
            kafka3.start_node(i)


@pytest.fixture
def make_cluster(kafka: LocalKafka, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    made: list[Cluster] = []
    request.node.yadtq_clusters = made

    def make(n: int, *, partitions: int = 6, **env: str) -> Cluster:
        cluster = Cluster(kafka.url, tmp_path / f"cluster{len(made)}", partitions=partitions,
                          extra_env={**KAFKA_WORKER_ENV, **REPLICATED, **env})
        made.append(cluster)
        return cluster.start(n, timeout=120)

    yield make
    for c in made:
        c.stop()


def all_in_sync(kafka: LocalKafka, topic: str) -> bool:
    everyone = kafka.node_ids()
    return all(isr == everyone for isr in kafka.in_sync_replicas(topic).values())


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["kill-9", "sigstop"])
def test_a_worker_killed_or_frozen_on_three_brokers(make_cluster: Any, tmp_path: Path, sig: int) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    cluster = make_cluster(3 if sig == signal.SIGKILL else 2, YADTQ_TEST_LEDGER=str(ledger.path))
    victim, ids, at = fault_mid_task(cluster, ledger, sig, n_tasks=30)
    try:
        done = wait_all_finished(cluster if sig == signal.SIGKILL else _Without(cluster, victim), ids,
                                 timeout=120)
    finally:
        if sig == signal.SIGSTOP:
            victim.signal(signal.SIGCONT)
    if sig == signal.SIGSTOP:
        cluster.wait_settled(timeout=90)
        done = wait_all_finished(cluster, ids, timeout=60)
    figures = check(ledger.read(), done, faulty=victim.worker_id, fault_at=at,
                    allow_stale_finish=sig == signal.SIGSTOP)
    assert figures["in_flight"] >= 2 and figures["rerun"] == figures["in_flight"]
    assert sorted(done[t]["result"] for t in ids) == list(range(30))
    logger.info("3-node Kafka, %s: fault -> first re-run %.2f s (%d in flight), session timeout %s s",
                signal.Signals(sig).name, figures["failover_s"], figures["in_flight"],
                KAFKA_WORKER_ENV["YADTQ_SESSION_TIMEOUT"])


def test_two_brokers_down_refuses_submissions_until_one_returns(kafka: LocalKafka, make_cluster: Any) -> None:
    cluster = make_cluster(2, YADTQ_SUBMIT_TIMEOUT="3")
    client = Client(cluster.workers[0].url)
    accepted = [client.submit("add", i, i).id for i in range(10)]
    wait_all_finished(cluster, accepted, timeout=60)
    wait_for(lambda: all_in_sync(kafka, cluster.task_topic), timeout=60, message="every replica in sync")
    down = [0, 1]
    for i in down:
        kafka.kill_node(i)
    refusals = []

    def refused() -> bool:
        resp = httpx.post(f"{cluster.workers[1].url}/tasks", json={"task": "add", "args": [1, 1]}, timeout=30)
        if resp.status_code == 202:
            accepted.append(resp.json()["task-id"])  # a write that made it before the ISR shrank
            return False
        refusals.append(resp)
        return resp.status_code == 503 and "in-sync replicas" in resp.json()["error"]

    wait_for(refused, timeout=90, interval=0.5, message="a submission refused for too few in-sync replicas")
    for resp in refusals:
        assert resp.status_code == 503 and resp.json()["reason"] == "not-confirmed", resp.text
        assert resp.headers["content-type"].startswith("application/json")
    kafka.start_node(down[0])

    def submitted() -> Any:
        resp = httpx.post(f"{cluster.workers[1].url}/tasks", json={"task": "add", "args": [40, 2]}, timeout=30)
        return resp.json()["task-id"] if resp.status_code == 202 else None

    back = wait_for(submitted, timeout=120, interval=1.0, message="submissions accepted again")
    assert Client(cluster.workers[1].url).task(back).result(timeout=120) == 42
    done = wait_all_finished(cluster, accepted, timeout=120)
    assert all(row["status"] == "success" for row in done.values())


def test_brokers_killed_while_tasks_flow(kafka: LocalKafka, make_cluster: Any, tmp_path: Path) -> None:
    """5,000 tasks written straight to the task topic while, in turn, the broker leading
    most task partitions is killed, restarted, and the active controller is killed."""
    n = 5000
    ledger = Ledger(tmp_path / "ledger.jsonl")
    cluster = make_cluster(2, partitions=12, YADTQ_TEST_LEDGER=str(ledger.path))
    tag = cluster.tag
    ids = [f"flow-{tag}-{i}" for i in range(n)]
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", retries=1_000_000,
                             max_in_flight_requests_per_connection=1, linger_ms=5)
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            for i, task_id in enumerate(ids):
                producer.send(cluster.task_topic, key=task_id.encode(),
                              value=json.dumps({"task-id": task_id, "task": "tests.ledgered",
                                                "args": [0.002], "kwargs": {"value": i}}).encode())
                if i % 50 == 49:
                    time.sleep(0.02)  # a flow over several seconds, not one burst
            producer.flush(timeout=300)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    sender = threading.Thread(target=produce, daemon=True)
    sender.start()
    client = Client(cluster.workers[0].url)
    reads: list[tuple[str, int, str]] = []
    seen_done: list[str] = []

    def progress(k: int) -> bool:
        return len(ledger.read().by_id()) >= k

    def read_back() -> None:
        """Tasks already seen finished must read finished, or 503, from every worker."""
        for task_id in seen_done[-20:]:
            for w in cluster.running():
                r = httpx.get(f"{w.url}/tasks/{task_id}", timeout=30)
                reads.append((task_id, r.status_code, r.json().get("status", "") if r.status_code == 200 else ""))

    def note_done() -> None:
        for task_id in ids[:: max(1, n // 100)]:
            try:
                if client.get_task(task_id)["status"] == "success":
                    seen_done.append(task_id)
            except Exception:  # noqa: BLE001 - not there yet, or 503
                pass

    faults = []
    wait_for(lambda: progress(n // 5), timeout=120, interval=0.2, message="a fifth of the tasks to run")
    leaders = kafka.partition_leaders(cluster.task_topic)
    busiest = max(kafka.node_ids(), key=lambda node: sum(1 for v in leaders.values() if v == node))
    victim = kafka.node_ids().index(busiest)
    kafka.kill_node(victim)
    faults.append(time.time())
    note_done()
    read_back()
    wait_for(lambda: progress(n // 2), timeout=180, interval=0.2, message="half of the tasks to run")
    kafka.start_node(victim)
    read_back()
    wait_for(lambda: all_in_sync(kafka, cluster.task_topic), timeout=120, interval=0.5,
             message="the restarted broker back in sync")
    wait_for(lambda: progress(7 * n // 10), timeout=180, interval=0.2, message="70% of the tasks to run")
    controller = kafka.node_ids().index(kafka.active_controller())
    kafka.kill_node(controller)
    faults.append(time.time())
    note_done()
    read_back()
    sender.join(timeout=300)
    assert not errors and not sender.is_alive(), errors
    producer.close(timeout=30)
    done = wait_all_finished(cluster, ids, timeout=300)
    read_back()
    kafka.start_node(controller)
    assert all(done[t]["status"] == "success" for t in ids)
    assert sorted(done[t]["result"] for t in ids) == list(range(n))
    # Never a wrong answer: a task seen finished reads finished, or 503 during an election.
    wrong = [r for r in reads if not (r[1] == 503 or (r[1] == 200 and r[2] == "success"))]
    assert not wrong, wrong[:10]
    # Re-runs only of tasks in flight at a fault (a worker's commits and writes may
    # fail while a partition has no leader): started within a few seconds of one.
    for task_id, runs in ledger.read().by_id().items():
        if len(runs) > 1:
            assert any(abs(runs[0].start - f) < 15 for f in faults), (task_id, runs)
    assert len([t for t, runs in ledger.by_id().items() if len(runs) > 1]) < n // 10
    wait_for(lambda: all_in_sync(kafka, cluster.task_topic), timeout=120, interval=0.5,
             message="every broker back in sync")
    for w in cluster.workers:
        assert w.alive and w.starts == 1, w.tail()


class _Without:
    """``cluster`` read through every running worker but ``worker`` (frozen: it cannot answer)."""

    def __init__(self, cluster: Cluster, worker: Any) -> None:
        self._cluster = cluster
        self._worker = worker

    def running(self) -> list[Any]:
        return [w for w in self._cluster.running() if w is not self._worker]
