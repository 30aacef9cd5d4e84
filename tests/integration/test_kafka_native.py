"""Kafka-native submission: any Kafka client can enqueue; bad records never stop a partition."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_core import get_all, wait_all_finished
from tests.support.cluster import ROOT
from tests.support.wait import wait_for
from yadtq_app import Client

pytestmark = pytest.mark.integration

MAX_BYTES = 2048


def producer(broker: Any) -> Any:
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=broker.bootstrap)


def test_key_missing_or_different_from_the_id(shared_cluster: Any, broker: Any) -> None:
    cluster = shared_cluster
    kp = producer(broker)
    # No key, no task-id: the id is derived from where the record landed.
    meta = kp.send(cluster.task_topic, value=b'{"task": "add", "args": [1, 2]}').get(timeout=10)
    derived = f"{meta.topic}-{meta.partition}-{meta.offset}"
    # A key that is not the id: the status is still found by the id, from every worker.
    ids = [f"odd-key-{cluster.tag}-{i}" for i in range(10)]
    for i, tid in enumerate(ids):
        kp.send(cluster.task_topic, key=b"some-other-key",
                value=json.dumps({"task-id": tid, "task": "multiply", "args": [i, 2]}).encode())
    kp.flush()
    kp.close()
    done = wait_all_finished(cluster, [derived] + ids)
    assert done[derived]["result"] == 3
    assert [done[t]["result"] for t in ids] == [i * 2 for i in range(10)]
    for t in [derived] + ids:
        answers = get_all(cluster, t)
        assert all(a == answers[0] for a in answers) and answers[0]["attempts"] == 1


def test_poison_records_are_accounted_for_and_do_not_delay_good_ones(cluster_factory: Any, broker: Any) -> None:
    cluster = cluster_factory(extra_env={"YADTQ_MAX_MESSAGE_BYTES": str(MAX_BYTES)}, partitions=2).start(2)
    tag = cluster.tag
    poison: list[tuple[bytes | None, str, str | None]] = [  # (value, reason, readable id)
        (b"\xff\xfe\x00garbage", "not-utf8", None),
        (b"{not json", "not-json", None),
        (b"[1, 2, 3]", "not-object", None),
        (b"", "empty", None),
        (None, "empty", None),
        (json.dumps({"task-id": f"unk-{tag}", "task": "no.such.task", "args": []}).encode(), "unknown-task",
         f"unk-{tag}"),
        (json.dumps({"task-id": f"types-{tag}", "task": "add", "args": "1,2"}).encode(), "bad-field",
         f"types-{tag}"),
        (json.dumps({"task-id": f"big-{tag}", "task": "echo", "args": ["x" * (2 * MAX_BYTES)]}).encode(),
         "too-large", None),
    ]
    kp = producer(broker)
    good: dict[str, int] = {}
    sent_at: dict[str, float] = {}
    bad_offsets = []
    for round_ in range(3):
        for j, (value, reason, _) in enumerate(poison):
            key = f"k-{tag}-{round_}-{j}".encode()
            meta = kp.send(cluster.task_topic, key=key, value=value).get(timeout=10)
            bad_offsets.append((meta.partition, meta.offset, reason))
            tid = f"good-{tag}-{round_}-{j}"
            sent_at[tid] = time.time()
            kp.send(cluster.task_topic, key=tid.encode(),
                    value=json.dumps({"task-id": tid, "task": "add", "args": [round_, j]}).encode()).get(timeout=10)
            good[tid] = round_ + j
    kp.close()

    done = wait_all_finished(cluster, list(good))
    for tid, result in good.items():
        assert done[tid]["status"] == "success" and done[tid]["result"] == result
        delay = done[tid]["started_at"] - sent_at[tid]
        assert delay < 1.0, (tid, delay)

    # Readable ids end failed with the reason.
    c = Client(cluster.workers[0].url)
    for _, reason, tid in poison:
        if tid:
            info = c.task(tid).wait(30)
            assert info["status"] == "failed" and info["error"]["reason"] == reason, info

    # Every bad record is in the dead letters, with its reason and where it came from.
    readable = {tid for _, _, tid in poison if tid}
    n_letters = len([1 for _, _, tid in poison if not tid]) * 3 + len(readable)  # one letter per readable id

    def all_dead() -> list[dict[str, Any]]:
        letters = c.dead_letters()
        return letters if len(letters) >= n_letters else []

    letters = wait_for(all_dead, timeout=30, message="dead letters")
    by_place = {(d["partition"], d["offset"]): d for d in letters if d["topic"] == cluster.task_topic}
    for partition, offset, reason in bad_offsets:
        d = by_place.get((partition, offset))
        if d is None:  # a readable id that was dead-lettered under its id (once)
            assert reason in ("unknown-task", "bad-field"), (partition, offset, reason)
            continue
        assert d["reason"] == reason, d
    raw = [base64.b64decode(d["raw"]) for d in letters if d["reason"] == "not-utf8"]
    assert raw and raw[0] == b"\xff\xfe\x00garbage"

    # Counters per reason, summed over workers (heartbeats carry them, about once a second).
    expected_counts: dict[str, int] = {}
    for _, reason, _ in poison:
        expected_counts[reason] = expected_counts.get(reason, 0) + 3

    def counted() -> dict[str, int]:
        totals: dict[str, int] = {}
        for w in cluster.workers_view():
            for reason, n in w["invalid_messages"].items():
                totals[reason] = totals.get(reason, 0) + n
        return totals if totals == expected_counts else {}

    wait_for(counted, timeout=10, interval=0.2, message=f"invalid-message counters to reach {expected_counts}")
    for w in cluster.workers:
        assert w.alive and w.starts == 1
        assert "Traceback" not in w.log_text()


def readme_block(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- {title} -->\s*```python\n(.*?)```", text, re.S)
    assert m, f"README block {title!r} not found"
    return m.group(1)


def test_readme_kafka_python_example_as_written(cluster_factory: Any, broker: Any, tmp_path: Path) -> None:
    """The README's plain-Kafka example, then its Python client example, run as written
    (only the broker address and the worker's URL differ)."""
    import subprocess
    import sys

    cluster = cluster_factory(extra_env={"YADTQ_TASK_TOPIC": "task_queue"}).start(1)
    code = readme_block("kafka-python example")
    assert "yadtq" not in code  # no yadtq code on the producer's side
    assert len(code.strip().splitlines()) <= 10
    script = tmp_path / "producer.py"
    script.write_text(code.replace("127.0.0.1:9092", broker.bootstrap))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    info = Client(cluster.workers[0].url).task("readme-kafka-1").wait(30)
    assert info["status"] == "success" and info["result"] == 20 and info["args"] == [4, 5]

    # The Python client's example, as written, after it (it reads the Kafka example's task).
    code = readme_block("python client example")
    assert "127.0.0.1:6066" in code
    script = tmp_path / "client.py"
    script.write_text(code.replace("http://127.0.0.1:6066", cluster.workers[0].url))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180,
                       env={"PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr


def test_same_id_written_twice_runs_once(cluster_factory: Any, broker: Any, tmp_path: Path) -> None:
    """A Kafka client that writes one id twice (a retrying producer) gets one execution."""
    from tests.support.ledger import Ledger

    ledger_path = tmp_path / "ledger.jsonl"
    cluster = cluster_factory(extra_env={"YADTQ_TEST_LEDGER": str(ledger_path)}).start(1)
    kp = producer(broker)
    ids = [f"twice-{cluster.tag}-{i}" for i in range(5)]
    for tid in ids:
        value = json.dumps({"task-id": tid, "task": "tests.ledgered", "args": [0.5]}).encode()
        kp.send(cluster.task_topic, key=tid.encode(), value=value)
        kp.send(cluster.task_topic, key=tid.encode(), value=value)  # while the first is running
    kp.flush()
    done = wait_all_finished(cluster, ids)
    assert all(done[t]["status"] == "success" and done[t]["attempts"] == 1 for t in ids)
    # and again, long after the first finished
    for tid in ids:
        kp.send(cluster.task_topic, key=tid.encode(),
                value=json.dumps({"task-id": tid, "task": "tests.ledgered", "args": [0.5]}).encode())
    sentinel = f"sentinel-{cluster.tag}"
    kp.send(cluster.task_topic, key=sentinel.encode(),
            value=json.dumps({"task-id": sentinel, "task": "add", "args": [1, 1]}).encode())
    kp.flush()
    kp.close()
    wait_all_finished(cluster, [sentinel])
    runs = Ledger(ledger_path).read().by_id()
    assert {t: len(runs[t]) for t in ids} == {t: 1 for t in ids}


def test_readme_python_example_as_written(shared_cluster: Any, tmp_path: Path) -> None:
    """The README's first example (define, submit, read), run as written against a worker."""
    import subprocess
    import sys

    cluster = shared_cluster
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)  # the first Python block
    assert "@task" in code and ".submit(" in code and ".result(" in code
    script = tmp_path / "example.py"
    script.write_text(code.replace("http://127.0.0.1:6066", cluster.workers[0].url))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                       env={"PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "20"


def test_a_record_in_a_partition_other_than_its_ids_runs_once_where_its_row_lives(
        shared_cluster: Any, broker: Any) -> None:
    """Seen before the fix: it ran, its row went to the wrong partition's changelog, every
    worker answered 404 for good, and the same id submitted over HTTP ran again."""
    from yadtq_app.encoding import partition_of

    cluster = shared_cluster
    kp = producer(broker)
    ids = [f"elsewhere-{cluster.tag}-{i}" for i in range(6)]
    for i, tid in enumerate(ids):
        wrong = (partition_of(tid.encode(), cluster.partitions) + 1 + i) % cluster.partitions
        kp.send(cluster.task_topic, key=tid.encode(), partition=wrong,
                value=json.dumps({"task-id": tid, "task": "multiply", "args": [i, 3]}).encode()).get(timeout=10)
    kp.close()
    done = wait_all_finished(cluster, ids)
    assert [done[t]["result"] for t in ids] == [3 * i for i in range(6)]
    client = Client(cluster.running()[0].url)
    for tid in ids:
        answers = get_all(cluster, tid)
        assert all(a == answers[0] for a in answers) and answers[0]["attempts"] == 1
        again = httpx.post(f"{cluster.running()[1].url}/tasks", timeout=10,
                           json={"task-id": tid, "task": "multiply", "args": [1, 1]})
        assert again.status_code == 200 and again.json()["duplicate"] is True, again.text
    for tid in ids:
        assert client.get_task(tid)["attempts"] == 1


def test_records_too_big_or_too_odd_to_copy_are_still_dead_lettered(cluster_factory: Any, broker: Any) -> None:
    """Seen before the fix: for these, the dead letter (a base64 copy of the whole record)
    could not be written either, and they vanished with only an ERROR line."""
    import hashlib

    cluster = cluster_factory(partitions=2).start(2)
    tag = cluster.tag
    big = b"\x00not json" + b"z" * 900_000
    huge_task = json.dumps({"task-id": f"bigargs-{tag}", "task": "echo", "args": ["q" * 990_000]}).encode()
    deep = b'{"task": "echo", "args": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    poison = [  # value, reason
        (big, "too-large"),
        (huge_task, "too-large"),
        (deep, "too-deep"),
        (b'{"task-id": "\\ud800' + tag.encode() + b'", "task": "add", "args": [1, 2]}', "bad-field"),
        (b'{"task-id": "ok-key-' + tag.encode() + b'", "task": "add", "ordering_key": "\\udfff"}', "bad-field"),
    ]
    kp = producer(broker)
    placed = []
    good = []
    for j, (value, reason) in enumerate(poison):
        meta = kp.send(cluster.task_topic, key=f"p-{tag}-{j}".encode(), value=value).get(timeout=30)
        placed.append((meta.partition, meta.offset, value, reason))
        tid = f"around-{tag}-{j}"
        kp.send(cluster.task_topic, key=tid.encode(),
                value=json.dumps({"task-id": tid, "task": "add", "args": [j, j]}).encode()).get(timeout=10)
        good.append(tid)
    kp.close()
    done = wait_all_finished(cluster, good)
    assert [done[t]["result"] for t in good] == [2 * j for j in range(len(poison))]
    client = Client(cluster.workers[0].url)

    def letters() -> dict[tuple[int, int], dict[str, Any]]:
        found = {(d["partition"], d["offset"]): d for d in client.dead_letters() if d["topic"] == cluster.task_topic}
        return found if all((p, o) in found for p, o, _, _ in placed) else {}

    found = wait_for(letters, timeout=30, message="a dead letter for every bad record")
    for partition, offset, value, reason in placed:
        d = found[(partition, offset)]
        if reason is not None:
            assert d["reason"] == reason, d
        assert d["raw_size"] == len(value) and d["raw_sha256"] == hashlib.sha256(value).hexdigest()
        assert base64.b64decode(d["raw"]) == value[:4096] and d["raw_truncated"] == (len(value) > 4096)
    for w in cluster.workers:
        assert w.alive and w.starts == 1


def test_a_record_waiting_behind_a_busy_worker_reads_queued_not_404(cluster_factory: Any, broker: Any,
                                                                      tmp_path: Path) -> None:
    """A task written straight to the task topic has no row until its worker reads it.
    Seen before: behind a busy worker, ``GET /tasks/{id}`` answered 404 "no task with
    id" for tasks waiting in the topic. They read ``queued`` (``scheduled`` with a later
    eta), singly and in a batch; an id never written is still 404; a cancel reaches one."""
    from tests.support.ledger import Ledger
    from yadtq_app import TaskNotFound

    ledger = Ledger(tmp_path / "ledger.jsonl")
    cluster = cluster_factory(extra_env={"YADTQ_CONCURRENCY": "1", "YADTQ_TEST_LEDGER": str(ledger.path)}).start(1)
    [worker] = cluster.workers
    client = Client(worker.url)
    gate = tmp_path / "go"
    blocker = client.submit("tests.ledgered_wait_file", str(gate))
    wait_for(lambda: blocker.id in ledger.read().running(worker.worker_id), timeout=30, interval=0.05,
             message="the worker's only slot taken")
    tag = cluster.tag
    ids = [f"unread-{tag}-{i}" for i in range(6)]
    later, never = f"unread-later-{tag}", f"never-{tag}"
    kp = producer(broker)
    for i, tid in enumerate(ids):
        kp.send(cluster.task_topic, key=tid.encode(),
                value=json.dumps({"task-id": tid, "task": "tests.ledgered", "args": [0], "kwargs": {"value": i}}
                                 ).encode())
    kp.send(cluster.task_topic, key=later.encode(),
            value=json.dumps({"task-id": later, "task": "add", "args": [1, 1], "countdown": 3600}).encode())
    kp.flush()
    kp.close()
    for i, tid in enumerate(ids):
        row = client.get_task(tid)
        assert (row["status"], row["task"], row["kwargs"]) == ("queued", "tests.ledgered", {"value": i}), row
    assert client.get_task(later)["status"] == "scheduled"
    with pytest.raises(TaskNotFound):
        client.get_task(never)
    r = httpx.post(f"{worker.url}/tasks/status", json={"ids": [*ids, later, never]}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["unavailable"] == [] and body["tasks"][never] is None
    assert [body["tasks"][t]["status"] for t in [*ids, later]] == ["queued"] * len(ids) + ["scheduled"]
    client.cancel(ids[0])
    wait_for(lambda: client.get_task(ids[0])["status"] == "cancelled", timeout=30, interval=0.05,
             message="the unread task cancelled")
    gate.touch()
    done = wait_all_finished(cluster, ids[1:])
    assert [done[t]["result"] for t in ids[1:]] == list(range(1, len(ids)))
    assert ids[0] not in ledger.read().by_id() and client.get_task(ids[0])["status"] == "cancelled"
