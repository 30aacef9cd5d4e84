"""Every id a client may use reaches exactly its task, through every worker.

Ids travel in URL paths (``GET /tasks/{id}``), in the duplicate check and in the
forwarding between workers; characters that mean something in a URL must not change
which task a request reaches.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.support.routing import owner_and_other
from yadtq_app import Client, Conflict
from yadtq_app.ids import MAX_ID_LENGTH, quote_id

pytestmark = pytest.mark.integration

SPECIAL = ["#", "?", "/", "&", "=", "+", ";", ":", "@", "%", "%2e", "%2F", "%25", "%ff", "%41", " ", "..",
           "/../", "./", "/cancel", "/retry", "ü", "日本語", "😀", "e\u0301", "\u202e", "a b  c"]


def ids_for(tag: str) -> list[str]:
    """Ids built around every special string, plus whole ids that are paths' own words."""
    ids = [f"{tag}{s}x" for s in SPECIAL] + [f"{s}{tag}" for s in SPECIAL]
    ids += [".", "..", "...", " ", f"{tag}/", f"/{tag}", "status", f"{tag}?wait=1"]
    ids += [("L" + tag).ljust(MAX_ID_LENGTH, "L"), (tag + "😀" * MAX_ID_LENGTH)[:MAX_ID_LENGTH]]
    return list(dict.fromkeys(ids))


def post(url: str, body: Any) -> httpx.Response:
    """``body`` as ASCII JSON (``\\ud800`` escapes a lone surrogate, which has no UTF-8 form)."""
    return httpx.post(url, content=json.dumps(body).encode(), headers={"content-type": "application/json"},
                      timeout=30)


def read(url: str, task_id: str, **params: Any) -> httpx.Response:
    for _ in range(50):
        r = httpx.get(f"{url}/tasks/{quote_id(task_id)}", params=params, timeout=30)
        if r.status_code != 503:
            return r
    return r


def test_every_id_is_routed_exactly_through_owner_and_non_owner(shared_cluster: Any) -> None:
    cluster = shared_cluster
    ids = ids_for(f"id-{cluster.tag}-")

    def submit(i: int, task_id: str) -> None:
        owner, other = owner_and_other(cluster, task_id)
        # Most through the worker that does not hold the id (its duplicate check asks the
        # owner over HTTP), the rest through the owner.
        via = owner if i % 3 == 0 else other
        r = httpx.post(f"{via.url}/tasks", json={"task-id": task_id, "task": "echo", "args": [task_id]}, timeout=30)
        assert r.status_code == 202, (task_id, r.status_code, r.text)
        assert r.json() == {"task-id": task_id, "status": "queued"}

    def check(task_id: str) -> None:
        owner, other = owner_and_other(cluster, task_id)
        for w in (owner, other):
            r = read(w.url, task_id, wait="20")
            assert r.status_code == 200, (task_id, w.url, r.status_code, r.text)
            row = r.json()
            assert (row["task-id"], row["status"], row["result"]) == (task_id, "success", task_id), (w.url, row)
            assert Client(w.url).task(task_id).result(timeout=20) == task_id
            with pytest.raises(Conflict):  # the retry reached this task (a 404 would be another id)
                Client(w.url).retry(task_id)
            dup = httpx.post(f"{w.url}/tasks", json={"task-id": task_id, "task": "echo", "args": ["again"]},
                             timeout=30)
            assert dup.status_code == 200, (task_id, w.url, dup.status_code, dup.text)
            assert dup.json() == {"task-id": task_id, "status": "success", "duplicate": True}

    with ThreadPoolExecutor(8) as pool:  # each id on its own: several at a time
        list(pool.map(submit, range(len(ids)), ids))
        list(pool.map(check, ids))


def test_an_id_that_extends_another_is_not_its_duplicate(shared_cluster: Any) -> None:
    """``victim#…`` or ``victim?…`` is a task of its own, not a duplicate of ``victim``."""
    cluster = shared_cluster
    victim = f"victim-{cluster.tag}"
    assert Client(cluster.workers[0].url).submit("echo", "victim", task_id=victim).result(timeout=30) == "victim"
    for n, suffix in enumerate(["#x", "?x", "?wait=1", "/", "/cancel", "%00", "%23x", "/.."]):
        task_id = f"{victim}{suffix}{n}" if suffix != "/" else f"{victim}/"
        _, other = owner_and_other(cluster, task_id)
        r = httpx.post(f"{other.url}/tasks", json={"task-id": task_id, "task": "echo", "args": [n]}, timeout=30)
        assert r.status_code == 202, (task_id, r.status_code, r.text)
        assert Client(other.url).task(task_id).result(timeout=30) == n
    assert Client(cluster.workers[1].url).task(victim).info()["result"] == "victim"


@pytest.mark.parametrize("task_id", ["", "x" * (MAX_ID_LENGTH + 1), "😀" * (MAX_ID_LENGTH + 1), "a\nb", "a\x00b",
                                     "a\x7fb", "a\x85b", "\ud800", "a\udfffb"])
def test_an_id_outside_the_allowed_set_is_400_everywhere(shared_cluster: Any, task_id: str) -> None:
    for w in shared_cluster.workers:
        r = post(f"{w.url}/tasks", {"task-id": task_id, "task": "echo", "args": [1]})
        assert r.status_code == 400, (task_id, r.status_code, r.text)
        assert r.json()["reason"] == "bad-field" and "task-id" in r.json()["error"]
        r = post(f"{w.url}/tasks/status", {"ids": [task_id]})
        assert r.status_code == 400, (task_id, r.status_code, r.text)
        if task_id and not any(0xD800 <= ord(c) <= 0xDFFF for c in task_id):
            # In a path (a lone surrogate has no UTF-8 form, so no path can name one).
            r = httpx.get(f"{w.url}/tasks/{quote_id(task_id)}", timeout=10)
            assert r.status_code == 400, (task_id, r.status_code, r.text)
            assert r.json()["reason"] == "bad-id"


@pytest.mark.parametrize("raw", ["%ff", "%C3%28", "a%80b", "%ED%A0%80", "%F0%9F%98"])
def test_a_path_that_is_not_utf8_is_400_everywhere(shared_cluster: Any, raw: str) -> None:
    for w in shared_cluster.workers:
        for method, path in (("GET", f"/tasks/{raw}"), ("POST", f"/tasks/{raw}/cancel"),
                             ("POST", f"/tasks/{raw}/retry")):
            r = httpx.request(method, w.url + path, timeout=10)
            assert r.status_code == 400, (method, path, r.status_code, r.text)
            assert r.json()["reason"] == "bad-id"
