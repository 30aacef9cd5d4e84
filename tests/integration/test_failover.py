"""Worker liveness and failover with real worker processes: kill -9, SIGSTOP, SIGTERM, late join.

Tasks are ``tests.ledgered``: each execution writes start/end lines (id, attempt, worker)
to a ledger file, and ``tests.support.ledger.check`` asserts from it: lost 0, stuck 0,
double completion 0, re-executions only for tasks in flight at the fault.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_core import wait_all_finished
from tests.support.ledger import Ledger, check, fault_mid_task
from tests.support.wait import wait_for
from yadtq_app import Client

pytestmark = pytest.mark.integration

def ledger_cluster(cluster_factory: Any, tmp_path: Path, n: int, **env: str) -> tuple[Any, Ledger]:
    path = tmp_path / "ledger.jsonl"
    cluster = cluster_factory(extra_env={"YADTQ_TEST_LEDGER": str(path), **env}).start(n)
    return cluster, Ledger(path)


def test_kill_9_mid_task_reruns_in_flight_tasks_elsewhere(cluster_factory: Any, tmp_path: Path) -> None:
    cluster, ledger = ledger_cluster(cluster_factory, tmp_path, 3)
    victim, ids, killed_at = fault_mid_task(cluster, ledger, signal.SIGKILL, n_tasks=30)
    victim.proc.wait(10)
    done = wait_all_finished(cluster, ids, timeout=90)
    figures = check(ledger.read(), done, faulty=victim.worker_id, fault_at=killed_at)
    assert figures["in_flight"] >= 2 and figures["rerun"] == figures["in_flight"]
    for t in ids:
        if done[t]["attempts"] > 1:
            assert done[t]["worker"] != victim.worker_id
    assert sorted(done[t]["result"] for t in ids) == list(range(30))


def test_dead_worker_is_shown_dead_and_stays_listed(cluster_factory: Any, tmp_path: Path) -> None:
    cluster = cluster_factory().start(3)
    victim = cluster.workers[2]
    victim.signal(signal.SIGKILL)
    victim.proc.wait(10)
    killed_at = time.time()

    def shown_dead() -> dict[str, Any] | None:
        view = {w["id"]: w for w in cluster.workers_view(cluster.workers[0])}
        w = view.get(victim.worker_id)
        return w if w is not None and not w["alive"] else None

    dead = wait_for(shown_dead, timeout=30, interval=0.2, message="the killed worker to be shown dead")
    assert dead["last_heartbeat"] <= killed_at + 0.5
    # the living are alive, and the dead one stays listed
    view = cluster.wait_settled(timeout=60)
    assert {w["id"] for w in view} == {cluster.workers[0].worker_id, cluster.workers[1].worker_id}
    listed = {w["id"]: w["alive"] for w in cluster.workers_view(cluster.workers[1])}
    assert listed[victim.worker_id] is False


def test_sigstop_past_the_session_then_sigcont(cluster_factory: Any, tmp_path: Path) -> None:
    cluster, ledger = ledger_cluster(cluster_factory, tmp_path, 2)
    victim, ids, stopped_at = fault_mid_task(cluster, ledger, signal.SIGSTOP, n_tasks=20)
    try:
        # The survivor takes over: every task finishes while the victim is still paused.
        done = wait_all_finished(cluster, ids, timeout=90)
    finally:
        victim.signal(signal.SIGCONT)
    # It rejoins and gets partitions again; the statuses stay right.
    cluster.wait_settled(timeout=60)
    try:
        after = wait_all_finished(cluster, ids, timeout=30)
    except AssertionError:
        import httpx
        raise AssertionError([(w.worker_id, t[:8], r.status_code, r.text[:300]) for w in cluster.workers
                              for t in ids for r in [httpx.get(f"{w.url}/tasks/{t}", timeout=10)]
                              if r.status_code != 200 or r.json()["status"] != "success"]) from None
    figures = check(ledger.read(), after, faulty=victim.worker_id, fault_at=stopped_at, allow_stale_finish=True)
    assert figures["in_flight"] >= 2
    runs = ledger.read().by_id()
    # A stale outcome did not overwrite the newer attempt.
    for t in ids:
        assert after[t] == done[t] or after[t]["attempts"] >= done[t]["attempts"]
        if t in ledger.in_flight(victim.worker_id, stopped_at):
            # Run again and finished by the survivor. (Its attempt number is 2, or 1 when
            # the paused worker had not yet recorded its start: see agents.tasks.record_start.)
            assert after[t]["worker"] != victim.worker_id
            assert any(run.worker != victim.worker_id for run in runs[t])
    assert victim.alive
    assert Client(victim.url).submit("add", 1, 1).result(timeout=30) == 2


def test_sigterm_hands_back_in_flight_tasks(cluster_factory: Any, tmp_path: Path) -> None:
    cluster, ledger = ledger_cluster(cluster_factory, tmp_path, 2)
    victim, ids, stopped_at = fault_mid_task(cluster, ledger, signal.SIGTERM, n_tasks=20)
    assert victim.proc.wait(30) is not None
    done = wait_all_finished(cluster, ids, timeout=90)
    check(ledger.read(), done, faulty=victim.worker_id, fault_at=stopped_at)
    assert sorted(done[t]["result"] for t in ids) == list(range(20))


def test_late_joiner_gets_partitions_and_work(cluster_factory: Any, tmp_path: Path) -> None:
    cluster = cluster_factory().start(2)
    Client(cluster.workers[0].url).submit("add", 1, 1).result(timeout=30)
    [late] = cluster.add(1)
    late.wait_healthy(60)
    view = {w["id"]: w for w in cluster.wait_settled(timeout=60)}
    assert view[late.worker_id]["partitions"], "the late joiner got no partitions"
    c = Client(cluster.workers[0].url)
    ids = [c.submit("add", i, i).id for i in range(60)]
    done = wait_all_finished(cluster, ids)
    assert {done[t]["worker"] for t in ids} == {w.worker_id for w in cluster.workers}
