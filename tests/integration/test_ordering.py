"""Head-of-line blocking and per-key ordering, with real workers on the real broker."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.kafka import committed_offset
from tests.support.ledger import Ledger
from tests.support.wait import wait_for
from yadtq_app import Client

pytestmark = pytest.mark.integration


def one_partition_cluster(cluster_factory: Any, tmp_path: Path, n: int) -> tuple[Any, Ledger]:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    cluster = cluster_factory(partitions=1, extra_env={"YADTQ_TEST_LEDGER": str(ledger.path)}).start(n)
    return cluster, ledger


def test_a_long_task_does_not_hold_up_the_short_ones_behind_it(cluster_factory: Any, tmp_path: Path) -> None:
    cluster, ledger = one_partition_cluster(cluster_factory, tmp_path, 1)
    client = Client(cluster.running()[0].url)
    flag = tmp_path / "release-long"
    long = client.submit("tests.ledgered_wait_file", str(flag))
    wait_for(lambda: client.get_task(long.id)["status"] == "processing", timeout=20, message="the long task")
    short = [client.submit("tests.ledgered", 0.05, value=i) for i in range(20)]
    results = [h.result(timeout=30) for h in short]
    assert results == list(range(20))
    assert client.get_task(long.id)["status"] == "processing"  # all 20 ran while it was still running
    flag.touch()
    assert long.result(timeout=20) == "done"


def test_a_crash_redelivers_the_unfinished_task_before_finished_ones(cluster_factory: Any, tmp_path: Path,
                                                                   broker: Any) -> None:
    """Offsets are committed only up to the lowest unfinished task: after a kill -9 the
    new owner runs the long task again; the short ones that finished after it are not
    run twice."""
    cluster, ledger = one_partition_cluster(cluster_factory, tmp_path, 2)
    client = Client(cluster.running()[0].url)

    def committed() -> int:
        return committed_offset(broker.bootstrap, cluster.app_id, cluster.task_topic, 0) or 0

    before = [client.submit("tests.ledgered", 0.01, value=i) for i in range(3)]
    assert [h.result(timeout=30) for h in before] == [0, 1, 2]
    wait_for(lambda: committed() >= 3, timeout=30, interval=0.2, message="the first three offsets committed")
    flag = tmp_path / "release-long"
    long = client.submit("tests.ledgered_wait_file", str(flag))  # offset 3
    after = [client.submit("tests.ledgered", 0.01, value=i) for i in range(10)]
    assert [h.result(timeout=30) for h in after] == list(range(10))
    # Watch the commits for more than Faust's commit interval (2.8 s): they never pass the long task.
    t0 = time.monotonic()
    while time.monotonic() - t0 < 6:
        assert committed() <= 3
    owner_id = client.get_task(long.id)["worker"]
    owner = next(w for w in cluster.workers if w.worker_id == owner_id)
    owner.kill()
    survivor = cluster.running()[0]
    flag.touch()
    survivor_client = Client(survivor.url)

    def rerun() -> dict[str, Any] | None:
        info = survivor_client.get_task(long.id)
        return info if info["status"] == "success" else None

    info = wait_for(rerun, timeout=60, interval=0.1, message="the long task to be re-run by the survivor")
    assert info["worker"] == survivor.worker_id and info["attempts"] == 2
    runs = ledger.read().by_id()
    assert [e.worker for e in runs[long.id]] == [owner_id, survivor.worker_id]
    assert all(len(runs[h.id]) == 1 for h in before + after), {h.id: runs[h.id] for h in before + after}


def test_tasks_with_one_ordering_key_run_one_at_a_time_in_order(cluster_factory: Any, tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    cluster = cluster_factory(extra_env={"YADTQ_TEST_LEDGER": str(ledger.path)}).start(2)
    clients = [Client(w.url) for w in cluster.running()]
    rng = random.Random(5)
    keys = ["alice", "bob", "carol"]
    submitted: dict[str, list[str]] = {k: [] for k in keys}
    handles = []
    for i in range(30):
        key = keys[i % 3]
        h = clients[i % 2].send_task("tests.ledgered", [rng.choice([0.02, 0.1, 0.2])], {"value": i},
                                     ordering_key=key)
        submitted[key].append(h.id)
        handles.append(h)
    unordered = [clients[0].send_task("tests.ledgered", [0.2], {"value": 100 + i}) for i in range(6)]
    for h in handles + unordered:
        assert h.wait(timeout=90)["status"] == "success"
    runs = ledger.read().by_id()
    for key, ids in submitted.items():
        seq = [runs[t][0] for t in ids]
        assert all(len(runs[t]) == 1 for t in ids)
        for a, b in zip(seq, seq[1:]):
            assert a.end is not None and b.start >= a.end, f"{key}: {b.id} started before {a.id} ended"
    # ...while different keys (and unordered tasks) ran side by side.
    spans = sorted((e.start, e.end) for exs in runs.values() for e in exs)
    overlaps = sum(1 for (s1, e1), (s2, _) in zip(spans, spans[1:]) if s2 < e1)
    assert overlaps > 0
    row = clients[0].get_task(submitted["alice"][0])
    assert row["ordering_key"] == "alice"


def test_an_ordered_task_that_fails_or_is_cancelled_lets_the_next_run(cluster_factory: Any, tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    cluster = cluster_factory(extra_env={"YADTQ_TEST_LEDGER": str(ledger.path)}).start(1)
    client = Client(cluster.running()[0].url)
    flag = tmp_path / "release"
    first = client.send_task("tests.ledgered_wait_file", [str(flag)], ordering_key="k")
    failing = client.send_task("tests.poison", ["x"], max_retries=1, ordering_key="k")
    cancelled = client.send_task("tests.ledgered", [0.01], ordering_key="k")
    last = client.send_task("tests.ledgered", [0.01], {"value": 7}, ordering_key="k")
    wait_for(lambda: client.get_task(first.id)["status"] == "processing", timeout=20, message="the first task")
    cancelled.cancel()
    assert last.status() == "queued"  # waiting its turn (its queued row may not be folded yet: still queued)
    flag.touch()
    assert last.result(timeout=60) == 7
    assert failing.wait(timeout=5)["attempts"] == 2
    assert client.get_task(cancelled.id)["status"] == "cancelled"
    runs = ledger.read().by_id()
    assert cancelled.id not in runs
    assert runs[last.id][0].start >= max(e.start for e in runs[failing.id])
