"""Task semantics on the real broker with real workers: retries, time limits, dead
letters, resubmission, dedup, cancellation, countdown/eta, progress, result expiry."""

from __future__ import annotations

import datetime
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests.support.cluster import Cluster
from tests.support.ledger import Ledger
from tests.support.wait import wait_for
from yadtq_app import Client, Conflict, TaskCancelled, TaskNotFound

pytestmark = pytest.mark.integration


@pytest.fixture
def env(shared_cluster: Cluster, tmp_path: Path) -> tuple[Cluster, Ledger, Path]:
    """The shared two workers, their execution ledger, and a directory for flag files."""
    return shared_cluster, Ledger(shared_cluster.ledger_path), tmp_path


@pytest.fixture
def client(env: tuple[Cluster, Ledger, Path]) -> Iterator[Client]:
    c = Client(env[0].running()[0].url)
    yield c
    c.close()


def starts(ledger: Ledger, task_id: str) -> list[Any]:
    return sorted((e for e in ledger.read().executions if e.id == task_id), key=lambda e: e.start)


def wait_status(client: Client, task_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        info = client.get_task(task_id)
        return info if info["status"] == status else None

    return wait_for(reached, timeout=timeout, interval=0.02, message=f"task {task_id} to be {status}")


def test_poison_task_is_dead_lettered_after_max_retries_with_backoff_while_others_flow(
        env: tuple[Cluster, Ledger, Path], client: Client) -> None:
    _, ledger, _ = env
    poison = client.submit("tests.poison", "bad input")  # max_retries=3, retry_backoff=0.3
    seen_retrying = wait_status(client, poison.id, "retrying", timeout=30)
    assert seen_retrying["next_run_at"] is not None and seen_retrying["error"]["type"] == "RuntimeError"
    # Other tasks flow while the poison waits out its backoff.
    others = [client.submit("add", i, i) for i in range(30)]
    done_others = [h.wait(timeout=30) for h in others]
    assert [d["result"] for d in done_others] == [2 * i for i in range(30)]

    final = poison.wait(timeout=60)
    assert final["status"] == "failed" and final["attempts"] == 4 and final["retries"] == 3
    assert [h["status"] for h in final["history"]] == ["retrying", "retrying", "retrying", "failed"]
    runs = starts(ledger, poison.id)
    assert [r.attempt for r in runs] == [1, 2, 3, 4], runs
    gaps = [b.start - a.start for a, b in zip(runs, runs[1:])]
    for n, gap in enumerate(gaps, 1):
        assert gap >= 0.3 * 2 ** (n - 1), f"retry {n} came after {gap:.3f} s: {gaps}"
    assert min(d["finished_at"] for d in done_others) < final["finished_at"]

    def dead_letter() -> dict[str, Any] | None:
        return next((d for d in client.dead_letters() if d["task-id"] == poison.id), None)

    letter = wait_for(dead_letter, timeout=20, message="the poison task's dead letter")
    assert letter["reason"] == "retries-exhausted" and letter["task"] == "tests.poison"
    assert [h["attempt"] for h in letter["history"]] == [1, 2, 3, 4]
    assert all(h["error"]["message"] == "bad input" for h in letter["history"])


def test_retry_exception_runs_again_until_it_succeeds(env: tuple[Cluster, Ledger, Path], client: Client) -> None:
    h = client.submit("tests.retry_until", 3, delay=0.3)
    info = h.wait(timeout=30)
    assert info["status"] == "success" and info["result"] == 3 and info["attempts"] == 3
    runs = starts(env[1], h.id)
    assert [r.attempt for r in runs] == [1, 2, 3]
    assert all(b.start - a.start >= 0.3 for a, b in zip(runs, runs[1:]))


def test_per_submission_max_retries_and_every_failed_task_is_dead_lettered(
        env: tuple[Cluster, Ledger, Path], client: Client) -> None:
    more = client.send_task("tests.fail_until_file", ["/nonexistent/never"], max_retries=2)
    none = client.send_task("tests.poison", ["once"], max_retries=0)
    assert more.wait(timeout=60)["attempts"] == 3
    assert none.wait(timeout=30)["attempts"] == 1
    assert len(starts(env[1], none.id)) == 1
    def letter(task_id: str) -> Any:
        return next((d for d in client.dead_letters() if d["task-id"] == task_id), None)

    retried = wait_for(lambda: letter(more.id), timeout=20, message="the dead letter of the task with max_retries=2")
    assert retried["reason"] == "retries-exhausted" and len(retried["history"]) == 3
    # A task without retries that fails is findable there too (as with Celery's failed tasks).
    once = wait_for(lambda: letter(none.id), timeout=20, message="the dead letter of the task with max_retries=0")
    assert once["reason"] == "failed" and len(once["history"]) == 1


def test_cpu_bound_process_task_is_killed_at_its_limit_and_the_worker_keeps_serving(
        env: tuple[Cluster, Ledger, Path], client: Client) -> None:
    t0 = time.time()
    h = client.send_task("tests.spin", [120], timeout=1.5)
    info = h.wait(timeout=60)
    assert info["status"] == "failed" and info["error"]["type"] == "TimeLimitExceeded"
    assert info["finished_at"] - info["started_at"] < 10
    runs = starts(env[1], h.id)
    assert len(runs) == 1 and runs[0].end is None  # it never got to finish
    pid = _ledger_pid(env[1], h.id)

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, timeout=10, message=f"the spinning process {pid} to be killed")
    assert client.submit("add", 2, 3).result(timeout=20) == 5
    quick = client.send_task("tests.spin", [0.1], timeout=30)
    assert isinstance(quick.result(timeout=60), int)  # the pool replaced the killed process
    assert time.time() - t0 < 90


def _ledger_pid(ledger: Ledger, task_id: str) -> int:
    import json

    for line in ledger.path.read_text().splitlines():
        rec = json.loads(line)
        if rec["id"] == task_id:
            return int(rec["pid"])
    raise AssertionError(f"no ledger line for {task_id}")


def test_async_time_limit_retries_when_configured(env: tuple[Cluster, Ledger, Path], client: Client) -> None:
    h = client.send_task("tests.ledgered", [30], timeout=0.5, max_retries=1)
    info = h.wait(timeout=60)
    assert info["status"] == "failed" and info["error"]["type"] == "TimeLimitExceeded"
    assert info["attempts"] == 2
    runs = starts(env[1], h.id)
    assert [r.attempt for r in runs] == [1, 2] and all(r.end is None for r in runs)


def test_thread_task_that_ignores_its_limit_fails_and_others_still_run(client: Client) -> None:
    h = client.send_task("tests.slow_sync", [5], timeout=0.3, max_retries=2)  # retry_on=(): never retried
    info = h.wait(timeout=30)
    assert info["status"] == "failed" and info["error"]["type"] == "TimeLimitExceeded" and info["attempts"] == 1
    assert client.submit("add", 1, 1).result(timeout=20) == 2


def test_failed_task_can_be_resubmitted_and_then_succeeds(env: tuple[Cluster, Ledger, Path],
                                                          client: Client) -> None:
    flag = env[2] / f"flag-{time.time_ns()}"
    h = client.send_task("tests.fail_until_file", [str(flag)], max_retries=1)
    assert h.wait(timeout=30)["status"] == "failed"
    wait_for(lambda: any(d["task-id"] == h.id for d in client.dead_letters()), timeout=20,
             message="the dead letter")
    flag.touch()
    answer = h.retry()
    assert answer["requested"] == "retry"
    info = wait_status(client, h.id, "success", timeout=30)
    assert info["result"] == "ok" and info["attempts"] == 3 and info["retries"] == 0
    assert [r.attempt for r in starts(env[1], h.id)] == [1, 2, 3]
    with pytest.raises(Conflict):
        h.retry()
    with pytest.raises(TaskNotFound):
        client.retry("no-such-task-id")


def test_same_id_submitted_twice_returns_the_existing_task_and_runs_once(
        env: tuple[Cluster, Ledger, Path], client: Client) -> None:
    cluster, ledger, _ = env
    task_id = f"dedup-{time.time_ns()}"
    first = httpx.post(cluster.running()[0].url + "/tasks",
                       json={"task-id": task_id, "task": "tests.ledgered", "args": [0.2]}, timeout=10)
    assert first.status_code == 202
    wait_status(client, task_id, "success")
    again = httpx.post(cluster.running()[1].url + "/tasks",
                       json={"task-id": task_id, "task": "tests.ledgered", "args": [0.2]}, timeout=10)
    assert again.status_code == 200 and again.json() == {"task-id": task_id, "status": "success",
                                                          "duplicate": True}

    # Concurrent submissions of one new id, through both workers at once.
    racing_id = f"race-{time.time_ns()}"
    barrier = threading.Barrier(8)
    codes: list[int] = []

    def submit(i: int) -> None:
        url = cluster.running()[i % 2].url + "/tasks"
        barrier.wait()
        codes.append(httpx.post(url, json={"task-id": racing_id, "task": "tests.ledgered", "args": [0.3]},
                                timeout=10).status_code)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # Each racer is accepted (202; all eight may be) or answered the task a faster one wrote (200).
    assert len(codes) == 8 and set(codes) <= {200, 202} and 202 in codes
    wait_status(client, racing_id, "success")
    assert len(starts(ledger, task_id)) == 1
    assert len(starts(ledger, racing_id)) == 1


def test_countdown_task_cancelled_before_its_time_never_runs(env: tuple[Cluster, Ledger, Path],
                                                             client: Client) -> None:
    h = client.send_task("tests.ledgered", [0.1], countdown=2.5)
    info = wait_status(client, h.id, "scheduled", timeout=10)
    assert info["eta"] is not None and info["next_run_at"] == pytest.approx(info["eta"])
    h.cancel()
    info = wait_status(client, h.id, "cancelled", timeout=10)
    assert info["error"]["type"] == "Cancelled"
    # Past its eta (plus margin), it still has not run.
    wait_for(lambda: time.time() > info["eta"] + 2.0, timeout=10, interval=0.1, message="the eta to pass")
    assert starts(env[1], h.id) == []
    assert client.get_task(h.id)["status"] == "cancelled"
    with pytest.raises(TaskCancelled):
        h.result(timeout=5)
    with pytest.raises(Conflict):
        h.cancel()


def test_running_async_task_is_cancelled(env: tuple[Cluster, Ledger, Path], client: Client) -> None:
    never = env[2] / f"never-{time.time_ns()}"
    h = client.submit("tests.ledgered_wait_file", str(never))
    wait_status(client, h.id, "processing", timeout=20)
    wait_for(lambda: starts(env[1], h.id), timeout=10, message="the task to start")
    h.cancel()
    info = wait_status(client, h.id, "cancelled", timeout=10)
    assert info["attempts"] == 1
    assert [r.end for r in starts(env[1], h.id)] == [None]


def test_countdown_and_eta_start_no_earlier(env: tuple[Cluster, Ledger, Path], client: Client) -> None:
    t0 = time.time()
    by_countdown = client.send_task("tests.ledgered", [0], countdown=1.5)
    eta = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)
    by_eta = client.send_task("tests.ledgered", [0], eta=eta)
    a = by_countdown.wait(timeout=30)
    b = by_eta.wait(timeout=30)
    assert a["status"] == b["status"] == "success"
    (run_a,), (run_b,) = starts(env[1], by_countdown.id), starts(env[1], by_eta.id)
    assert run_a.start >= t0 + 1.5 and a["started_at"] >= a["submitted_at"] + 1.5
    assert run_b.start >= eta.timestamp()
    assert run_b.start < eta.timestamp() + 5  # and not much later


def test_progress_shows_in_the_status(env: tuple[Cluster, Ledger, Path], client: Client) -> None:
    flag = env[2] / f"progress-{time.time_ns()}"
    h = client.submit("tests.progress_until_file", str(flag))

    def halfway() -> dict[str, Any] | None:
        p = h.progress()
        return p if p and p["fraction"] == 0.5 else None

    progress = wait_for(halfway, timeout=20, message="progress 0.5")
    assert progress["message"] == "halfway" and progress["at"] > 0
    flag.touch()
    assert h.result(timeout=20) == "done"


def test_bad_options_are_rejected_with_400(env: tuple[Cluster, Ledger, Path]) -> None:
    url = env[0].running()[0].url + "/tasks"
    for body in ({"task": "add", "args": [1, 2], "countdown": -1},
                 {"task": "add", "args": [1, 2], "countdown": 1, "eta": "2030-01-01T00:00:00Z"},
                 {"task": "add", "args": [1, 2], "eta": "next tuesday"},
                 {"task": "add", "args": [1, 2], "max_retries": -2},
                 {"task": "add", "args": [1, 2], "timeout": 0},
                 {"task": "add", "args": [1, 2], "attempt": 3}):
        resp = httpx.post(url, json=body, timeout=10)
        assert resp.status_code == 400, (body, resp.text)
        assert resp.json()["error"]


def test_finished_results_expire_after_the_ttl(cluster_factory: Any, broker: Any) -> None:
    from kafka import KafkaProducer

    ttl = 4.0
    cluster = cluster_factory(extra_env={"YADTQ_RESULT_TTL": str(ttl)}).start(1)
    client = Client(cluster.running()[0].url)
    ids = [f"ttl-{cluster.tag}-{i}" for i in range(1000)]
    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    for i, tid in enumerate(ids):
        kp.send(cluster.task_topic, key=tid.encode(),
                value=f'{{"task-id": "{tid}", "task": "add", "args": [{i}, 1]}}'.encode())
    kp.flush()
    kp.close()
    # All ran (the worker's own counter), and the newest is still there: not expired early.
    wait_for(lambda: sum(w["tasks_done"] for w in client.workers()) >= 1000, timeout=60, interval=0.2,
             message="1,000 tasks to run")
    newest = max((client.get_task(t) for t in ids[-20:]), key=lambda row: row["finished_at"])
    assert newest["status"] == "success" and time.time() < newest["finished_at"] + ttl

    # One batch read a poll: a GET per id costs a 404's catch-up wait each (~0.2 s on
    # Kafka, where one pass over 1,000 gone ids took 200 s).
    wait_for(lambda: all(row is None for row in client.statuses(ids).values()), timeout=60, interval=0.5,
             message="1,000 results to expire")
    assert time.time() >= newest["finished_at"] + ttl
    for tid in ids[::50]:  # and a GET of each of 20 of them is a 404
        with pytest.raises(TaskNotFound):
            client.get_task(tid)
    # A fresh task still runs and is answered; once expired it is gone for its own
    # handle too, seconds after it was submitted (not taken for a task still queued).
    fresh = client.submit("add", 1, 1)
    assert fresh.result(timeout=20) == 2
    wait_for(lambda: _gone(client, fresh.id), timeout=30, interval=0.2, message="the fresh result to expire")
    with pytest.raises(TaskNotFound):
        fresh.status()


def _gone(client: Client, task_id: str) -> bool:
    try:
        client.get_task(task_id)
    except TaskNotFound:
        return True
    return False
