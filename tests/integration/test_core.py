"""The core, end to end: real embedded broker, real worker processes."""

from __future__ import annotations

import random
import time
from typing import Any

import httpx
import pytest

from tests.support.kafka import count_messages
from tests.support.wait import wait_for
from yadtq_app import Client, InvalidTask, TaskFailed, TaskNotFound

pytestmark = pytest.mark.integration

OPS = {"add": lambda a, b: a + b, "subtract": lambda a, b: a - b, "multiply": lambda a, b: a * b}


def submit_mixed(cluster: Any, n: int) -> dict[str, tuple[str, list[int], int]]:
    """Submit n tasks of three kinds, round-robin over the workers; id → (task, args, expected)."""
    rng = random.Random(n)
    clients = [Client(w.url) for w in cluster.running()]
    expected = {}
    for i in range(n):
        name = list(OPS)[i % 3]
        args = [rng.randint(-1000, 1000), rng.randint(-1000, 1000)]
        h = clients[i % len(clients)].submit(name, *args)
        expected[h.id] = (name, args, OPS[name](*args))
    return expected


def get_all(cluster: Any, task_id: str) -> list[dict[str, Any]]:
    out = []
    for w in cluster.running():
        r = httpx.get(f"{w.url}/tasks/{task_id}", timeout=10)
        for _ in range(50):
            if r.status_code != 503:
                break
            time.sleep(0.1)
            r = httpx.get(f"{w.url}/tasks/{task_id}", timeout=10)
        assert r.status_code == 200, (w.url, r.status_code, r.text)
        out.append(r.json())
    return out


def wait_all_finished(cluster: Any, ids: list[str], timeout: float = 60) -> dict[str, dict[str, Any]]:
    client = Client(cluster.running()[0].url)
    done: dict[str, dict[str, Any]] = {}

    def finished() -> bool:
        for tid in ids:
            if tid in done:
                continue
            try:
                info = client.get_task(tid)
            except TaskNotFound:
                continue
            if info["status"] in ("success", "failed"):
                done[tid] = info
        return len(done) == len(ids)

    try:
        wait_for(finished, timeout=timeout, interval=0.1, message=f"{len(ids)} tasks to finish")
    except AssertionError as exc:
        left = {}
        for tid in [t for t in ids if t not in done][:5]:
            try:
                info = client.get_task(tid)
                left[tid] = (info["status"], info["attempts"], info["worker"], info.get("lease_until"))
            except Exception as read_exc:  # noqa: BLE001 - diagnostics only
                left[tid] = repr(read_exc)
        raise AssertionError(f"{exc}; not finished: {left}") from None
    return done


@pytest.mark.parametrize("n_workers", [2, 3])
def test_tasks_spread_over_workers_and_every_worker_answers_the_same(cluster_factory: Any, n_workers: int,
                                                                     request: pytest.FixtureRequest) -> None:
    cluster = request.getfixturevalue("shared_cluster") if n_workers == 2 else cluster_factory().start(n_workers)
    expected = submit_mixed(cluster, 100)
    done = wait_all_finished(cluster, list(expected))

    for tid, (name, args, result) in expected.items():
        info = done[tid]
        assert info["status"] == "success", info
        assert info["task"] == name and info["args"] == args
        assert info["result"] == result, (tid, info)
        assert info["attempts"] == 1
        assert info["submitted_at"] <= info["started_at"] <= info["finished_at"]

    executed_by = {info["worker"] for info in done.values()}
    assert executed_by == {w.worker_id for w in cluster.running()}, executed_by

    for tid in expected:
        answers = get_all(cluster, tid)
        assert all(a == answers[0] for a in answers), (tid, answers)

    # The heartbeat view agrees: every worker counted what it ran.
    view = cluster.wait_settled()
    assert sum(w["tasks_done"] for w in view) >= 100
    # Each worker's own account of what it holds: every partition, once.
    held = [p for w in cluster.running() for p in httpx.get(w.url + "/health", timeout=5).json()["partitions"]]
    assert sorted(held) == list(range(cluster.partitions))


def test_failing_task_is_recorded_and_worker_stays_up(shared_cluster: Any) -> None:
    cluster = shared_cluster
    logged_before = cluster.log_size()
    client = Client(cluster.workers[0].url)
    bad = client.submit("divide", 1, 0)
    boom = client.submit("tests.fail", "boom")
    with pytest.raises(InvalidTask, match="missing a required argument"):  # refused at submit
        client.submit("add", 1)
    unser = client.submit("tests.unserializable")
    with pytest.raises(TaskFailed) as err:
        bad.result(timeout=30)
    assert err.value.error["type"] == "ZeroDivisionError"
    assert "Traceback" in err.value.error["traceback"]
    info = boom.wait(30)
    assert info["status"] == "failed"
    assert info["error"]["type"] == "RuntimeError" and info["error"]["message"] == "boom"
    assert unser.wait(30)["error"]["type"] == "ResultNotSerializable"
    # Both workers are still up and still work.
    assert all(w.alive for w in cluster.workers)
    assert [Client(w.url).submit("add", 2, 2).result(timeout=30) for w in cluster.workers] == [4, 4]
    for w, start in zip(cluster.workers, logged_before):  # failures logged as failures, not agent crashes
        assert "Traceback" not in w.log_text()[start:]
        assert "crashed" not in w.log_text()[start:].lower()


def test_a_task_is_found_the_moment_its_submission_is_accepted(shared_cluster: Any) -> None:
    """Read your writes over plain HTTP: a GET, or a batch read, right after the 202 of
    ``POST /tasks`` finds the task on every worker (its ``queued`` event may still be on
    its way to the row's owner: the owner waits for it rather than answer 404)."""
    cluster = shared_cluster
    workers = cluster.running()
    with httpx.Client(timeout=30) as http:
        for i in range(30):
            accepting, asked = workers[i % len(workers)], workers[(i // 2) % len(workers)]
            resp = http.post(accepting.url + "/tasks", json={"task": "sleep", "args": [0.05]})
            assert resp.status_code == 202, resp.text
            task_id = resp.json()["task-id"]
            got = http.get(f"{asked.url}/tasks/{task_id}")
            assert got.status_code == 200, (i, got.status_code, got.text)
            assert got.json()["status"] in ("queued", "processing", "success")
        burst = [http.post(workers[0].url + "/tasks", json={"task": "add", "args": [i, i]}).json()["task-id"]
                 for i in range(20)]
        rows = http.post(workers[-1].url + "/tasks/status", json={"ids": burst}).json()
        assert rows["unavailable"] == []
        assert all(rows["tasks"][t] is not None for t in burst), rows


def test_unknown_id_is_404_on_every_worker(shared_cluster: Any) -> None:
    cluster = shared_cluster
    for w in cluster.workers:
        r = httpx.get(f"{w.url}/tasks/never-submitted-{cluster.tag}", timeout=10)
        assert r.status_code == 404
        assert "error" in r.json()


def test_bad_input_is_400_and_nothing_is_enqueued(cluster_factory: Any, broker: Any) -> None:
    cluster = cluster_factory().start(1)
    url = cluster.workers[0].url
    good = Client(url).submit("add", 1, 2)
    assert good.result(timeout=30) == 3
    before = count_messages(broker.bootstrap, cluster.task_topic)
    assert before == 1

    bad_bodies: list[Any] = [
        b"{not json",
        b"",
        b"[1, 2]",
        b'"multiply"',
        b'{"task": "no-such-task", "args": []}',
        b'{"args": [1, 2]}',
        b'{"task": 5}',
        b'{"task": "add", "args": "1,2"}',
        b'{"task": "add", "args": [1], "kwargs": [2]}',
        b'{"task-id": 42, "task": "add", "args": [1, 2]}',
        b'{"task-id": "", "task": "add", "args": [1, 2]}',
        b"\xff\xfe",
    ]
    for body in bad_bodies:
        r = httpx.post(f"{url}/tasks", content=body, headers={"content-type": "application/json"}, timeout=10)
        assert r.status_code == 400, (body, r.status_code, r.text)
        assert isinstance(r.json()["error"], str) and r.json()["error"]

    # A sentinel sent after the bad ones: once it has run, nothing else was written.
    sentinel = Client(url).submit("add", 2, 2)
    assert sentinel.result(timeout=30) == 4
    assert count_messages(broker.bootstrap, cluster.task_topic) == before + 1
    assert cluster.workers[0].alive


def test_seed_format_and_client_round_trip(shared_cluster: Any) -> None:
    cluster = shared_cluster
    url = cluster.workers[0].url
    r = httpx.post(f"{url}/tasks", json={"task-id": f"12345abc-{cluster.tag}", "task": "multiply", "args": [4, 5]})
    assert r.status_code == 202
    assert r.json() == {"task-id": f"12345abc-{cluster.tag}", "status": "queued"}
    c = Client(url)
    assert c.task(f"12345abc-{cluster.tag}").result(timeout=30) == 20
    h = c.submit("multiply", 4, 5)
    assert h.status() in ("queued", "processing", "success")
    assert h.result(timeout=10) == 20
    assert c.submit("sleep", 0.2).result(timeout=10) == 0.2
    assert c.submit("echo", value={"a": [1, 2]}).result(timeout=10) == {"a": [1, 2]}
    assert c.submit("tests.concat", "a", b="b").result(timeout=10) == "ab"


def test_a_long_poll_answers_when_the_task_finishes_on_every_worker(shared_cluster: Any) -> None:
    """``GET /tasks/{id}?wait=S`` holds the request until the task is final, on the
    owner and through a worker that forwards it, and answers with the row as it is
    when ``S`` runs out first."""
    cluster = shared_cluster
    for w in cluster.workers:
        handle = Client(w.url).submit("sleep", 0.6)
        t0 = time.monotonic()
        r = httpx.get(f"{w.url}/tasks/{handle.id}", params={"wait": "20"}, timeout=30)
        elapsed = time.monotonic() - t0
        assert r.status_code == 200, r.text
        row = r.json()
        assert row["status"] == "success" and row["result"] == 0.6
        assert 0.5 <= elapsed < 10  # held until the end of the task, not until the wait ran out
        assert row["finished_at"] <= time.time()
    slow = Client(cluster.workers[0].url).submit("sleep", 3)
    t0 = time.monotonic()
    r = httpx.get(f"{cluster.workers[1].url}/tasks/{slow.id}", params={"wait": "0.3"}, timeout=30)
    assert r.status_code == 200 and r.json()["status"] in ("queued", "processing")
    assert 0.25 <= time.monotonic() - t0 < 2.5
    assert slow.wait(30)["status"] == "success"  # the client's wait is the long poll
    unknown = f"never-submitted-{cluster.tag}"
    r = httpx.get(f"{cluster.workers[0].url}/tasks/{unknown}", params={"wait": "0.2"}, timeout=30)
    assert r.status_code == 404 and "error" in r.json()


@pytest.mark.parametrize("wait", ["0", "-1", "61", "abc", "nan"])
def test_a_bad_long_poll_wait_is_400(shared_cluster: Any, wait: str) -> None:
    r = httpx.get(f"{shared_cluster.workers[0].url}/tasks/whatever-{shared_cluster.tag}", params={"wait": wait},
                  timeout=10)
    assert r.status_code == 400
    assert r.json()["reason"] == "bad-field" and "wait" in r.json()["error"]


def test_batch_status_read_matches_single_reads_on_every_worker(shared_cluster: Any) -> None:
    cluster = shared_cluster
    expected = submit_mixed(cluster, 60)
    ids = list(expected)
    unknown = f"never-submitted-{cluster.tag}"
    client = Client(cluster.workers[1].url)
    done = client.wait_all(ids, timeout=60)
    assert set(done) == set(ids)
    assert {tid: row["result"] for tid, row in done.items()} == {tid: e[2] for tid, e in expected.items()}
    for w in cluster.workers:
        # One request: rows owned here are answered locally, the rest by their owners.
        r = httpx.post(f"{w.url}/tasks/status", json={"ids": [*ids, unknown, ids[0]]}, timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["unavailable"] == []
        assert body["tasks"][unknown] is None
        assert set(body["tasks"]) == {*ids, unknown}
        for tid in ids[:10]:
            assert body["tasks"][tid] == get_all(cluster, tid)[0]
    assert Client(cluster.workers[0].url).statuses([unknown, ids[0]])[unknown] is None


@pytest.mark.parametrize("body, reason", [
    ({"ids": "abc"}, "bad-field"),
    ({"ids": [1, 2]}, "bad-field"),
    ({"ids": [""]}, "bad-field"),
    ([], "bad-field"),
    ({"ids": [f"t{i}" for i in range(1001)]}, "too-many"),
])
def test_batch_status_read_rejects_bad_requests(shared_cluster: Any, body: Any, reason: str) -> None:
    r = httpx.post(f"{shared_cluster.workers[0].url}/tasks/status", json=body, timeout=10)
    assert r.status_code == 400
    assert r.json()["reason"] == reason and r.json()["error"]


def test_batch_status_read_of_a_malformed_body_is_400(shared_cluster: Any) -> None:
    r = httpx.post(f"{shared_cluster.workers[0].url}/tasks/status", content=b"{not json", timeout=10)
    assert r.status_code == 400 and "not JSON" in r.json()["error"]
