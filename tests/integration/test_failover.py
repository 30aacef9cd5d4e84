"""Worker liveness and failover with real worker processes: kill -9, SIGSTOP, SIGTERM, late join.

Tasks are ``tests.ledgered``: each execution writes start/end lines (id, attempt, worker)
to a ledger file, and ``tests.support.ledger.check`` asserts from it: lost 0, stuck 0,
double completion 0, re-executions only for tasks in flight at the fault.
"""

from __future__ import annotations

import functools
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_core import wait_all_finished
from tests.support.kafka import read_all
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
            # the paused worker had not yet recorded its start: see agents.reporting.record_start.)
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


@pytest.mark.kafka_only  # the embedded broker numbers the first generation 0: no LeaveGroup then (BROKER.md)
def test_a_worker_given_partitions_while_it_stops_still_leaves_the_group(cluster_factory: Any) -> None:
    """A rebalance that assigns partitions to a worker on its way out (another worker
    left meanwhile) must not keep it in the group: it leaves when its consumer stops, so
    the worker that stays takes every partition at once, not a session timeout later.
    (Faust's own answer to that assignment marked the consumer closed from the wrong
    event loop: it then exited without leaving, and could hang on its way out.)"""
    session = 20.0
    cluster = cluster_factory(extra_env={"YADTQ_SESSION_TIMEOUT": str(session)})
    [stopping] = cluster.add(1, wrap=[sys.executable, "-m", "tests.support.slow_stop"],
                             extra_env={"YADTQ_TEST_SLOW_STOP": "6"})
    leaving, staying = cluster.add(2)
    for w in cluster.workers:
        w.wait_healthy(60)
    cluster.wait_settled(timeout=60)
    stopping.signal(signal.SIGTERM)
    wait_for(lambda: "SlowStop]: Stopping" in stopping.log_text(), timeout=10, message="the slow stop to begin")
    mark = len(stopping.log_text())
    leaving.signal(signal.SIGTERM)  # its leaving starts a rebalance while the first one stops
    assert leaving.proc.wait(30) is not None
    assert stopping.proc.wait(30) is not None
    gone = time.monotonic()
    assert "Joined group" in stopping.log_text()[mark:], "the stopping worker was not in the rebalance"

    def all_partitions() -> bool:
        view = {w["id"]: w for w in cluster.workers_view(staying)}
        return sorted(view[staying.worker_id]["partitions"]) == list(range(cluster.partitions))

    wait_for(all_partitions, timeout=3 * session, interval=0.1, message="the staying worker to hold every partition")
    assert time.monotonic() - gone < session / 4, "the stopped worker's partitions waited for its session to end"


@pytest.mark.kafka_only  # the embedded broker numbers the first generation 0: no LeaveGroup then (BROKER.md)
def test_a_worker_stopped_while_the_group_waits_for_a_dead_member_exits_at_once(cluster_factory: Any) -> None:
    """A SIGTERM while the group rebalances, and the rebalance waits for a member that
    died (until its session ends): the worker must leave and exit, not wait with the
    group. (aiokafka's stop waits for its JoinGroup, which the broker holds until then.)"""
    session = 20.0
    cluster = cluster_factory(extra_env={"YADTQ_SESSION_TIMEOUT": str(session)}).start(4)
    dead, leaving, stopping, _staying = cluster.workers
    dead.kill()
    mark = len(stopping.log_text())
    leaving.signal(signal.SIGTERM)  # its LeaveGroup starts a rebalance, which waits for the dead one
    assert leaving.proc.wait(30) is not None
    wait_for(lambda: "(Re-)joining group" in stopping.log_text()[mark:], timeout=10,
             message="the worker to stop to rejoin the group")
    t0 = time.monotonic()
    stopping.signal(signal.SIGTERM)
    assert stopping.proc.wait(60) is not None
    took = time.monotonic() - t0
    assert took < session / 4, f"the stop took {took:.1f} s: it waited for the rebalance"


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


def ids_in_partitions(partitions: set[int], count: int, n: int) -> list[str]:
    """``n`` fresh task ids whose messages go to ``partitions`` (of ``count``), as the
    producer's default partitioner places them."""
    import uuid

    from aiokafka.partitioner import murmur2

    ids: list[str] = []
    while len(ids) < n:
        tid = uuid.uuid4().hex
        if (murmur2(tid.encode()) & 0x7FFFFFFF) % count in partitions:
            ids.append(tid)
    return ids


def test_tasks_running_through_a_rebalance_run_once_and_a_cancel_reaches_them(
        cluster_factory: Any, tmp_path: Path) -> None:
    """A worker runs two tasks in each partition, tasks that wait for a file, when a
    worker joins and takes some of its partitions. The newcomer reads those tasks again,
    with rows that say ``processing``: it must wait for their outcome (the busy worker's
    lease), not run them a second time. A cancel sent to the newcomer must reach the
    attempt on the busy worker (seen before: the new owner folded the cancel, the row
    said ``cancelled``, while the old worker ran the task to its end); a task whose
    partition stayed is cancelled too."""
    cluster, ledger = ledger_cluster(cluster_factory, tmp_path, 1, YADTQ_CONCURRENCY="32")
    busy = cluster.workers[0]
    flag = tmp_path / "go"
    client = Client(busy.url)
    by_partition = {p: [client.submit("tests.ledgered_wait_file", str(flag), task_id=tid).id
                        for tid in ids_in_partitions({p}, cluster.partitions, 2)]
                    for p in range(cluster.partitions)}
    ids = [t for p in by_partition.values() for t in p]
    wait_for(lambda: len(ledger.read().running(busy.worker_id)) == len(ids), timeout=30, interval=0.05,
             message="the busy worker running every task")
    [joiner] = cluster.add(1)
    joiner.wait_healthy(60)
    [view] = [w for w in cluster.wait_settled(timeout=60) if w["id"] == joiner.worker_id]
    gone = set(view["partitions"])
    assert gone, "the newcomer got no partitions"
    lost = [t for p in sorted(gone) for t in by_partition[p]]
    kept = [t for p in sorted(set(by_partition) - gone) for t in by_partition[p]]

    def found() -> bool:
        if any(len(runs) > 1 for runs in ledger.read().by_id().values()):
            return True  # run twice: asserted below
        lines = [line for line in joiner.log_text().splitlines() if f"still runs on {busy.worker_id}" in line]
        return all(any(f"task {t}: not running it yet" in line for line in lines) for t in lost)

    wait_for(found, timeout=30, interval=0.1, message="the newcomer to find the busy worker's tasks leased")
    newcomer = Client(joiner.url)
    cancelled = lost[::2] + kept[::2]
    finishing = [t for t in ids if t not in cancelled]
    for t in cancelled:
        newcomer.task(t).cancel()
    wait_for(lambda: all(newcomer.get_task(t)["status"] == "cancelled" for t in cancelled), timeout=30,
             interval=0.1, message="the cancelled tasks to end cancelled")
    # The lease holder learns of a cancel folded elsewhere when it renews the lease.
    wait_for(lambda: all(r.stopped for t in cancelled for r in ledger.read().by_id()[t]), timeout=30,
             interval=0.1, message="the busy worker to stop the cancelled attempts")
    flag.touch()  # a task still running would now finish: an "end" in the ledger
    done = wait_all_finished(cluster, finishing, timeout=90)
    wait_for(lambda: all(r.end for t in finishing for r in ledger.read().by_id()[t]), timeout=10,
             message="the finishing tasks' ends in the ledger")
    runs = ledger.read().by_id()
    assert {t: runs[t] for t in ids if len(runs[t]) != 1} == {}, "run twice"
    assert all(runs[t][0].worker == busy.worker_id for t in ids)
    for t in finishing:
        assert (done[t]["status"], done[t]["attempts"], done[t]["worker"]) == ("success", 1, busy.worker_id), done[t]
    for t in cancelled:
        assert runs[t][0].end is None, runs[t]  # stopped, never finished
        assert newcomer.get_task(t)["status"] == "cancelled"
    cluster.wait_settled(timeout=60)


def test_a_task_whose_rerun_is_killed_too_runs_again(cluster_factory: Any, tmp_path: Path, broker: Any) -> None:
    # The run again after a worker died is attempt 2 of the same message: the message,
    # read again once attempt 2's worker dies too, is no stale duplicate of it.
    cluster, ledger = ledger_cluster(cluster_factory, tmp_path, 3)
    client = Client(cluster.workers[0].url)
    gate = tmp_path / "open"
    task = client.submit("tests.ledgered_wait_file", str(gate))
    changelog = f"{cluster.app_id}-task-status-changelog"
    by_id = {w.worker_id: w for w in cluster.workers}
    killed = []
    def started(attempt: int) -> Any:  # recorded for good: in the changelog, not only in its worker's memory
        rows = [json.loads(r.value) for r in read_all(broker.bootstrap, changelog)
                if r.key == task.id.encode() and r.value is not None]
        return next((row["worker"] for row in rows if row["status"] == "processing"
                     and row["attempts"] == attempt and row["worker"] not in killed), None)

    for attempt in (1, 2):
        worker = by_id[wait_for(functools.partial(started, attempt), timeout=60, interval=0.2,
                                message=f"attempt {attempt} to start")]
        wait_for(functools.partial(lambda w: task.id in ledger.read().running(w), worker.worker_id), timeout=30,
                 interval=0.1, message=f"attempt {attempt} to run")
        worker.signal(signal.SIGKILL)
        worker.proc.wait(10)
        killed.append(worker.worker_id)
    [last] = cluster.running()
    wait_for(lambda: task.id in ledger.read().running(last.worker_id), timeout=60, interval=0.1,
             message="the last worker to run it")
    gate.touch()
    survivor = Client(last.url)
    assert survivor.task(task.id).result(timeout=30) == "done"
    row = survivor.get_task(task.id)
    assert (row["status"], row["attempts"], row["worker"]) == ("success", 3, last.worker_id)
    assert [run.worker for run in ledger.read().by_id()[task.id]] == [*killed, last.worker_id]


def test_a_lease_that_ran_out_while_its_renewals_waited_unread_holds(cluster_factory: Any, tmp_path: Path) -> None:
    # The new owner of a leased task is paused past the lease: on waking, the row's lease
    # has run out, but the renewals its worker sent meanwhile wait unread in the events
    # topic. Seen before: the new owner ran the task a second time at once.
    cluster, ledger = ledger_cluster(cluster_factory, tmp_path, 1, YADTQ_CONCURRENCY="16",
                                     YADTQ_SESSION_TIMEOUT="12")  # a 4 s pause is no freeze (fencing)
    busy = cluster.workers[0]
    client = Client(busy.url)
    flag = tmp_path / "go"
    ids = [client.submit("tests.ledgered_wait_file", str(flag), task_id=tid).id
           for p in range(cluster.partitions) for tid in ids_in_partitions({p}, cluster.partitions, 1)]
    wait_for(lambda: len(ledger.read().running(busy.worker_id)) == len(ids), timeout=30, interval=0.05,
             message="the busy worker running every task")
    [owner] = cluster.add(1)
    owner.wait_healthy(60)
    [view] = [w for w in cluster.wait_settled(timeout=60) if w["id"] == owner.worker_id]
    moved = [t for t in ids if _partition(t, cluster.partitions) in view["partitions"]]
    assert moved
    wait_for(lambda: all(f"task {t}: not running it yet" in owner.log_text() for t in moved), timeout=30,
             interval=0.1, message="the new owner waiting on the leases")
    owner.signal(signal.SIGSTOP)
    try:
        time.sleep(4)  # the fault: paused past the lease (3 s), within the session
    finally:
        owner.signal(signal.SIGCONT)
    resumed = time.monotonic()
    while time.monotonic() < resumed + 4:  # what it does on waking: no second run
        runs = ledger.read().by_id()
        assert {t: [r.worker for r in runs[t]] for t in moved if len(runs[t]) != 1} == {}
        time.sleep(0.1)
    flag.touch()
    done = wait_all_finished(cluster, ids, timeout=60)
    assert {(done[t]["status"], done[t]["attempts"], done[t]["worker"]) for t in ids} == \
        {("success", 1, busy.worker_id)}
    assert {t: len(runs) for t, runs in ledger.read().by_id().items() if len(runs) != 1} == {}


def _partition(task_id: str, count: int) -> int:
    from yadtq_app.encoding import partition_of

    return partition_of(task_id.encode(), count)
