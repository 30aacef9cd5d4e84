"""Every kind of hostile submission at once, between two batches of good tasks.

The defects each have their own test; this one checks the cluster as a whole: two
workers take every kind of bad input the probes found (over HTTP and as raw Kafka
records), and afterwards every good task succeeded on both workers, no worker
restarted, and every hostile submission is accounted for: a 4xx, a ``failed`` status
with its reason, a dead letter, or (for ids that are odd but allowed) a success.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from typing import Any

import httpx
import pytest

from tests.integration.test_core import wait_all_finished
from tests.integration.test_http_input import deep
from tests.support.routing import partition_of
from tests.support.wait import wait_for
from yadtq_app import Client

pytestmark = pytest.mark.integration


def good_batch(client: Client, tag: str, n: int) -> dict[str, int]:
    return {client.submit("add", i, i, task_id=f"good-{tag}-{i}").id: 2 * i for i in range(n)}


def test_hostile_submissions_between_good_batches_take_nothing_down(cluster_factory: Any, broker: Any) -> None:
    cluster = cluster_factory(partitions=4).start(2)
    w0, w1 = cluster.workers
    tag = cluster.tag
    client = Client(w0.url)
    good = good_batch(client, f"{tag}-a", 40)

    # -- over HTTP: refused with a JSON 4xx and a reason ------------------------------
    def raw_post(body: bytes, **headers: str) -> httpx.Response:
        return httpx.post(f"{w1.url}/tasks", content=body, timeout=30,
                          headers={"content-type": "application/json", **headers})

    refused = {
        "deep args": raw_post(b'{"task": "echo", "args": ' + deep(1000) + b"}"),
        "lone surrogate id": raw_post(b'{"task-id": "\\ud800", "task": "add", "args": [1, 2]}'),
        "NaN": raw_post(b'{"task": "echo", "args": [NaN]}'),
        "Infinity": raw_post(b'{"task": "echo", "args": [Infinity]}'),
        "unknown field": raw_post(b'{"task": "add", "args": [1, 2], "priority": 9}'),
        "far eta": raw_post(b'{"task": "add", "args": [1, 2], "eta": 1e308}'),
        "not json": raw_post(b"{nope"),
        "unregistered": raw_post(b'{"task": "os.system", "args": ["true"]}'),
        "too big": raw_post(json.dumps({"task": "echo", "args": ["x" * 2_000_000]}).encode()),
        "deflate bomb": raw_post(zlib.compress(b"[" * 5_000_000), **{"content-encoding": "deflate"}),
        "deep batch read": httpx.post(f"{w0.url}/tasks/status", content=b'{"ids": ' + deep(1000) + b"}",
                                      timeout=30),
        "bad path": httpx.get(f"{w0.url}/tasks/%ff", timeout=30),
    }
    for what, resp in refused.items():
        assert 400 <= resp.status_code < 500, (what, resp.status_code, resp.text[:200])
        assert resp.headers["content-type"].startswith("application/json"), (what, resp.text[:200])
        assert resp.json()["error"], what

    # -- over HTTP: accepted, and failed with a clear error ---------------------------
    too_large = [client.submit("echo", "x" * 300_000).id, client.submit("multiply", "ab", 1_000_000).id]
    # -- over HTTP: odd but allowed ids, through the worker that does not own them -----
    odd = {f"victim#{tag}": 1, f"victim?{tag}": 2, f"..{tag}": 3, f".%2e{tag}": 4, f"a/b/{tag}": 5,
           f"100%{tag}": 6, f"ünï {tag}": 7}
    for task_id, value in odd.items():
        other = w0 if partition_of(task_id, cluster.partitions) in _partitions(w1) else w1
        resp = httpx.post(f"{other.url}/tasks", json={"task-id": task_id, "task": "add", "args": [value, 0]},
                          timeout=30)
        assert resp.status_code == 202, (task_id, resp.text)

    # -- raw Kafka records --------------------------------------------------------------
    from kafka import KafkaProducer

    kp = KafkaProducer(bootstrap_servers=broker.bootstrap)
    wrong_partition = f"wrong-part-{tag}"
    dead_lettered: list[bytes] = []
    failed_by_id = {f"nan-{tag}": "bad-number"}
    kp.send(cluster.task_topic, key=wrong_partition.encode(),
            partition=(partition_of(wrong_partition, cluster.partitions) + 1) % cluster.partitions,
            value=json.dumps({"task-id": wrong_partition, "task": "add", "args": [20, 1]}).encode())
    for value in (b"\x00" + b"z" * 900_000, b'{"task": "echo", "args": ' + deep(100_000) + b"}",
                  b'{"task-id": "\\ud800x", "task": "add", "args": [1, 2]}', b"\xff\xfe not utf-8"):
        kp.send(cluster.task_topic, key=b"junk", value=value)
        dead_lettered.append(value)
    kp.send(cluster.task_topic, key=f"nan-{tag}".encode(),
            value=b'{"task-id": "nan-%s", "task": "echo", "args": [NaN]}' % tag.encode())
    kp.flush()
    kp.close()

    good.update(good_batch(client, f"{tag}-b", 40))

    # -- afterwards ---------------------------------------------------------------------
    done = wait_all_finished(cluster, list(good) + list(odd) + [wrong_partition] + too_large, timeout=90)
    for w in cluster.workers:  # every worker gives the same answers
        c = Client(w.url)
        for task_id, result in good.items():
            assert c.get_task(task_id)["result"] == result
        for task_id, value in odd.items():
            assert c.get_task(task_id)["result"] == value, task_id
        assert c.get_task(wrong_partition)["attempts"] == 1 and done[wrong_partition]["result"] == 21
        for task_id in too_large:
            row = c.get_task(task_id)
            assert row["status"] == "failed" and row["error"]["type"] == "ResultTooLarge", row["error"]
    for task_id, reason in failed_by_id.items():
        row = client.task(task_id).wait(30)
        assert row["status"] == "failed" and row["error"]["reason"] == reason, row

    digests = {hashlib.sha256(v).hexdigest() for v in dead_lettered}

    def all_dead_lettered() -> bool:
        letters = client.dead_letters()
        return digests <= {d["raw_sha256"] for d in letters} and \
            set(failed_by_id) <= {d["task-id"] for d in letters}

    wait_for(all_dead_lettered, timeout=30, message="a dead letter for every bad record")
    for w in cluster.workers:
        assert w.alive and w.starts == 1, w.tail()
        assert httpx.get(w.url + "/health", timeout=5).json()["status"] == "ok"


def _partitions(worker: Any) -> set[int]:
    return set(httpx.get(worker.url + "/health", timeout=5).json()["partitions"])
