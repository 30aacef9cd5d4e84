"""Bad input is a JSON 4xx naming what is wrong, over HTTP and from Kafka alike."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import httpx
import pytest

from tests.support.wait import wait_for
from yadtq_app import Client

pytestmark = pytest.mark.integration

#: YADTQ_MAX_NESTING's default: the message object is level 1, ``args`` level 2.
DEPTH = 32


def nest(levels: int) -> Any:
    """A list nested ``levels`` deep (``[]`` is one level)."""
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def deep(levels: int) -> bytes:
    """JSON text of :func:`nest` (too deep for ``json.dumps`` at a thousand levels)."""
    return b"[" * levels + b"]" * levels


def post(url: str, body: Any) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(url, content=raw, headers={"content-type": "application/json"}, timeout=30)


@pytest.mark.parametrize("body, reason, named", [
    (b'{"task": "echo", "args": ' + deep(1000) + b"}", "too-deep", str(DEPTH)),
    (b'{"task": "echo", "args": ' + deep(100_000) + b"}", "too-deep", str(DEPTH)),
    ({"task": "echo", "args": nest(DEPTH)}, "too-deep", str(DEPTH)),
    ({"task": "echo", "kwargs": {"value": nest(DEPTH - 1)}}, "too-deep", str(DEPTH)),
    (b'{"task": "echo", "args": [NaN]}', "bad-number", "NaN"),
    (b'{"task": "echo", "args": [Infinity]}', "bad-number", "Infinity"),
    (b'{"task": "echo", "kwargs": {"value": -Infinity}}', "bad-number", "-Infinity"),
    (b'{"task": "echo", "args": [1e999]}', "bad-number", "1e999"),
    ({"task": "echo", "args": [1], "eta": 1e308}, "bad-field", "eta"),
    ({"task": "echo", "args": [1], "eta": "9999-12-31T23:59:59"}, "bad-field", "eta"),
    ({"task": "echo", "args": [1], "countdown": 400 * 86400}, "bad-field", "countdown"),
    ({"task": "echo", "args": [1], "priority": 9}, "unknown-field", "priority"),
    ({"task": "echo", "args": [1], "queue": "fast"}, "unknown-field", "queue"),
    ({"task": "echo", "arg": [1]}, "unknown-field", "arg"),
])
def test_a_bad_submission_is_a_json_400_on_every_worker(shared_cluster: Any, body: Any, reason: str,
                                                        named: str) -> None:
    for w in shared_cluster.workers:
        r = post(f"{w.url}/tasks", body)
        assert r.status_code == 400, (r.status_code, r.headers.get("content-type"), r.text[:300])
        assert r.headers["content-type"].startswith("application/json")
        assert r.json()["reason"] == reason and named in r.json()["error"], r.json()


def test_the_limits_themselves_are_accepted(shared_cluster: Any) -> None:
    c = Client(shared_cluster.workers[0].url)
    deep = c.submit_json({"task": "echo", "args": nest(DEPTH - 1)})
    assert deep.result(timeout=30) == nest(DEPTH - 2)
    later = c.send_task("echo", [1], countdown=365 * 86400)
    assert later.info()["status"] == "scheduled"
    later.cancel()


@pytest.mark.parametrize("body", [b'{"ids": ' + deep(1000) + b"}", {"ids": ["a"], "x": nest(DEPTH)},
                                  b'{"ids": ["a", NaN]}'])
def test_a_bad_batch_read_is_a_json_400(shared_cluster: Any, body: Any) -> None:
    for w in shared_cluster.workers:
        r = post(f"{w.url}/tasks/status", body)
        assert r.status_code == 400, (r.status_code, r.text[:300])
        assert r.json()["reason"] in ("too-deep", "bad-number"), r.json()


def test_kafka_records_with_the_same_faults_are_dead_lettered(shared_cluster: Any, broker: Any) -> None:
    """The task topic takes what HTTP takes: each of these ends ``failed`` with the
    same reason and goes to the dead letters; none runs."""
    from kafka import KafkaProducer

    tag = shared_cluster.tag
    records = {
        f"nan-{tag}": (b'{"task-id": "nan-%s", "task": "echo", "args": [NaN]}' % tag.encode(), "bad-number"),
        f"deep-{tag}": (json.dumps({"task-id": f"deep-{tag}", "task": "echo", "args": nest(DEPTH)}).encode(),
                        "too-deep"),
        f"field-{tag}": (json.dumps({"task-id": f"field-{tag}", "task": "echo", "args": [1],
                                     "priority": 1}).encode(), "unknown-field"),
        f"eta-{tag}": (json.dumps({"task-id": f"eta-{tag}", "task": "echo", "args": [1],
                                   "eta": 1e308}).encode(), "bad-field"),
    }
    # Too deep for any JSON decoder to read its id: dead-lettered where it lies.
    unreadable = json.dumps({"task-id": f"very-deep-{tag}", "task": "echo"}).encode()[:-1] + b', "args": ' \
        + deep(5000) + b"}"
    kp = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for task_id, (value, _) in records.items():
        kp.send(shared_cluster.task_topic, key=task_id.encode(), value=value)
    kp.send(shared_cluster.task_topic, key=f"very-deep-{tag}".encode(), value=unreadable)
    kp.flush()
    kp.close()
    c = Client(shared_cluster.workers[1].url)
    for task_id, (_, reason) in records.items():
        info = c.task(task_id).wait(30)
        assert info["status"] == "failed" and info["error"]["reason"] == reason, info
        assert info["attempts"] == 0

    def dead() -> dict[str, str]:
        letters = {d["task-id"]: d["reason"] for d in c.dead_letters() if d["task-id"] in records}
        letters.update(("unreadable", d["reason"]) for d in c.dead_letters()
                       if d["raw_sha256"] == hashlib.sha256(unreadable).hexdigest()
                       and base64.b64decode(d["raw"]) == unreadable[:4096])
        return letters if len(letters) == len(records) + 1 else {}

    assert wait_for(dead, timeout=30, message="dead letters") == {
        **{t: r for t, (_, r) in records.items()}, "unreadable": "too-deep"}


def test_lone_surrogates_outside_ids_are_never_a_500(shared_cluster: Any) -> None:
    """A lone surrogate (``"\\ud800"`` in JSON) has no UTF-8 form: in a task name or an
    ordering key it is a 400; in an argument it is data, carried as the escape."""
    w = shared_cluster.workers[0]
    r = post(f"{w.url}/tasks", {"task": "\ud800", "args": []})
    assert r.status_code == 400 and r.json()["reason"] == "unknown-task", r.text
    r = post(f"{w.url}/tasks", {"task": "echo", "args": [1], "ordering_key": "k\udfff"})
    assert r.status_code == 400 and r.json()["reason"] == "bad-field", r.text
    r = post(f"{w.url}/tasks", {"task": "echo", "args": ["a\ud800b"]})
    assert r.status_code == 202, r.text
    task_id = r.json()["task-id"]
    for v in shared_cluster.workers:
        row = Client(v.url).task(task_id).wait(30)
        assert row["status"] == "success" and row["result"] == "a\ud800b", row
