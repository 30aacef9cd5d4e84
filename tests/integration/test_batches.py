"""The task agent's batches (``agents.batches``) when their worker dies in the middle of one."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_core import wait_all_finished
from tests.integration.test_failover import ids_in_partitions, ledger_cluster
from tests.integration.test_kafka_native import producer
from tests.integration.test_metrics import scrape
from tests.support.kafka import committed_offset
from tests.support.ledger import check
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

#: How long each task of the burst runs.
SECONDS = 0.6


def test_kill_9_in_the_middle_of_a_batch_reruns_only_its_unfinished_tasks(cluster_factory: Any, broker: Any,
                                                                         tmp_path: Path) -> None:
    """A burst of tasks written straight to the task topic reaches a worker as one batch;
    it runs them two at a time. Killed (SIGKILL) after some have finished and been
    committed, while two run and the rest wait: the worker that takes its partitions
    runs the ones in flight again and the waiting ones once, and not one that had
    finished. (Acking the whole batch when it is read, a commit kills the waiting ones.)"""
    cluster, ledger = ledger_cluster(cluster_factory, tmp_path, 2, YADTQ_CONCURRENCY="2")
    survivor, victim = cluster.workers
    [view] = [w for w in cluster.wait_settled(timeout=60) if w["id"] == victim.worker_id]
    partitions = sorted(view["partitions"])
    ids = ids_in_partitions(set(partitions), cluster.partitions, 32)

    def committed() -> int:
        return sum(committed_offset(broker.bootstrap, cluster.app_id, cluster.task_topic, p) or 0 for p in partitions)

    before = committed()
    kp = producer(broker)
    for i, tid in enumerate(ids):
        kp.send(cluster.task_topic, key=tid.encode(),
                value=json.dumps({"task-id": tid, "task": "tests.ledgered_sync", "args": [SECONDS],
                                  "kwargs": {"value": i}}).encode())
    kp.flush()
    kp.close()

    metrics: dict[Any, float] = {}

    def halfway() -> bool:
        # The slow looks first (the commit, the metrics), the ledger last, just before the
        # kill: the two tasks it shows running must still run when the kill lands.
        if committed() <= before:
            return False
        metrics.update(scrape(victim.url))
        ledger.read()
        ended = [e for e in ledger.executions if e.end is not None]
        running = ledger.running_executions(victim.worker_id)
        return len(ended) >= 6 and len(running) == 2 and all(time.time() - e.start < SECONDS / 2 for e in running)

    wait_for(halfway, timeout=60, interval=0.02, message="the victim halfway through its tasks, some committed")
    victim.signal(signal.SIGKILL)
    killed_at = time.time()
    victim.proc.wait(10)
    taken = metrics[("yadtq_task_batch_messages_count", ())]
    assert taken < len(ids) / 2, f"{taken} batches for {len(ids)} tasks: they were not taken up together"
    done = wait_all_finished(cluster, ids, timeout=90)
    figures = check(ledger.read(), done, faulty=victim.worker_id, fault_at=killed_at)
    runs = ledger.by_id()
    finished_before = {t for t in ids if any(e.end is not None and e.end <= killed_at for e in runs[t])}
    assert 6 <= len(finished_before) < len(ids) - 2
    assert all(len(runs[t]) == 1 and done[t]["worker"] == victim.worker_id for t in finished_before)
    assert figures["in_flight"] == figures["rerun"] == 2
    waited = set(ids) - finished_before - ledger.in_flight(victim.worker_id, killed_at)
    assert waited and all(len(runs[t]) == 1 and runs[t][0].worker == survivor.worker_id for t in waited)
    assert sorted(done[t]["result"] for t in ids) == list(range(len(ids)))
