"""Bulk submission: ``POST /tasks`` with a list, ``Client.submit_many``, ``yadtq submit --file``."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_core import wait_all_finished
from tests.support.kafka import read_all
from yadtq_app import Client
from yadtq_app.errors import TaskNotFound

pytestmark = pytest.mark.integration


def test_each_item_is_checked_like_a_single_submission_and_answered_in_order(shared_cluster: Any) -> None:
    cluster = shared_cluster
    w0, w1 = cluster.workers[0], cluster.workers[-1]
    tag = uuid.uuid4().hex[:8]
    old = Client(w0.url).submit("add", 1, 1, task_id=f"bulk-old-{tag}")
    old.result(timeout=60)
    items: list[Any] = [
        {"task": "add", "args": [1, 2]},
        {"task": "no.such.task", "args": []},
        {"task": "multiply", "args": [4]},
        42,
        {"task-id": f"bulk-mine-{tag}", "task": "multiply", "args": [6, 7]},
        {"task-id": f"bulk-mine-{tag}", "task": "multiply", "args": [6, 7]},
        {"task-id": f"bulk-old-{tag}", "task": "add", "args": [1, 1]},
        {"task": "add", "args": [1, 2], "surprise": True},
        {"task": "echo", "args": ["x"], "countdown": 0.5},
    ]
    resp = httpx.post(f"{w1.url}/tasks", json=items, timeout=30)
    assert resp.status_code == 200, resp.text
    answers = resp.json()["tasks"]
    assert len(answers) == len(items)
    fresh, unknown, bad_args, not_object, mine, mine_again, existing, unknown_field, later = answers
    assert fresh["status"] == "queued" and "error" not in fresh
    assert (unknown["reason"], unknown["code"]) == ("unknown-task", 400)
    assert (bad_args["reason"], bad_args["code"]) == ("bad-arguments", 400)
    assert not_object["code"] == 400 and not_object["error"]
    assert mine == {"task-id": f"bulk-mine-{tag}", "status": "queued"}
    assert mine_again == {**mine, "duplicate": True}
    assert existing == {"task-id": f"bulk-old-{tag}", "status": "success", "duplicate": True}
    assert (unknown_field["reason"], unknown_field["code"]) == ("unknown-field", 400)
    assert later["status"] == "scheduled"
    done = wait_all_finished(cluster, [fresh["task-id"], mine["task-id"], later["task-id"]], timeout=60)
    assert [done[t]["result"] for t in (fresh["task-id"], mine["task-id"], later["task-id"])] == [3, 42, "x"]
    # The duplicate ran once; the task that existed did not run again.
    assert done[mine["task-id"]]["attempts"] == 1
    assert Client(w0.url).get_task(f"bulk-old-{tag}")["attempts"] == 1


def test_more_than_a_thousand_or_none_is_refused_whole(shared_cluster: Any) -> None:
    url = shared_cluster.workers[0].url
    tag = uuid.uuid4().hex[:8]
    resp = httpx.post(f"{url}/tasks", json=[{"task-id": f"bulk-big-{tag}-{i}", "task": "add", "args": [i, 0]}
                                            for i in range(1001)], timeout=30)
    assert resp.status_code == 400 and resp.json()["reason"] == "too-many"
    with pytest.raises(TaskNotFound):
        Client(url).get_task(f"bulk-big-{tag}-0")  # nothing of it was submitted
    resp = httpx.post(f"{url}/tasks", json=[], timeout=30)
    assert resp.status_code == 400 and resp.json()["reason"] == "empty"


def test_a_request_of_which_nothing_is_accepted_is_a_400_with_every_item(shared_cluster: Any) -> None:
    url = shared_cluster.workers[0].url
    resp = httpx.post(f"{url}/tasks", json=[1, {"task": "no.such.task"}, {"task": "multiply", "args": [4]}],
                      timeout=30)
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["reason"] == "all-refused" and body["error"]
    assert [item["reason"] for item in body["tasks"]] == ["not-object", "unknown-task", "bad-arguments"]
    answers = Client(url).submit_many([{"task": "no.such.task"}, {"task": "no.such.task"}])
    assert [a["reason"] for a in answers] == ["unknown-task", "unknown-task"]


def test_submit_many_sends_chunks_and_every_task_runs_once(shared_cluster: Any) -> None:
    cluster = shared_cluster
    client = Client(cluster.workers[0].url)
    tag = uuid.uuid4().hex[:8]
    bodies = [{"task-id": f"bulk-many-{tag}-{i}", "task": "add", "args": [i, i]} for i in range(2100)]
    answers = client.submit_many(bodies)
    assert [a["task-id"] for a in answers] == [b["task-id"] for b in bodies]
    assert {a["status"] for a in answers} == {"queued"}
    done = wait_all_finished(cluster, [b["task-id"] for b in bodies], timeout=120)
    assert all(done[f"bulk-many-{tag}-{i}"]["result"] == 2 * i for i in range(2100))
    assert {row["attempts"] for row in done.values()} == {1}
    # Submitted again: every one a duplicate, nothing runs twice.
    again = client.submit_many(bodies[:50])
    assert all(a.get("duplicate") and a["status"] == "success" for a in again)


def test_cli_submit_file(shared_cluster: Any, tmp_path: Path) -> None:
    url = shared_cluster.workers[0].url
    tag = uuid.uuid4().hex[:8]
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join([json.dumps({"task-id": f"bulk-cli-{tag}-1", "task": "add", "args": [2, 3]}), "",
                               json.dumps({"task": "multiply", "args": [2]}),
                               json.dumps({"task-id": f"bulk-cli-{tag}-2", "task": "add", "args": [5, 5]})]) + "\n")
    cli = [sys.executable, "-m", "yadtq_app.cli"]
    run = subprocess.run([*cli, "submit", "--file", str(path), "--url", url], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 1, run.stderr
    assert run.stdout.split() == [f"bulk-cli-{tag}-1", f"bulk-cli-{tag}-2"]
    assert "task 2 refused" in run.stderr and "bad-arguments" in run.stderr
    client = Client(url)
    assert client.task(f"bulk-cli-{tag}-1").result(timeout=60) == 5
    assert client.task(f"bulk-cli-{tag}-2").result(timeout=60) == 10
    # From standard input; a line that is not JSON is a clear error, and nothing is sent.
    run = subprocess.run([*cli, "submit", "--file", "-", "--url", url], input='{"task": "add", "args": [1, 1]}\nnope\n',
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "line 2: not JSON" in run.stderr, run.stderr
    assert run.stdout == ""


def test_a_bulk_submission_s_queued_events_travel_one_record_per_partition(cluster_factory: Any,
                                                                           broker: Any) -> None:
    """The status agent gets a record per partition, not per task, and still answers each
    task's row at once."""
    cluster = cluster_factory().start(1)
    tag = uuid.uuid4().hex[:8]
    ids = [f"bulk-batch-{tag}-{i}" for i in range(300)]
    resp = httpx.post(f"{cluster.workers[0].url}/tasks", timeout=30,
                      json=[{"task-id": t, "task": "add", "args": [1, 2], "countdown": 300} for t in ids])
    assert resp.status_code == 200, resp.text
    assert {a["status"] for a in resp.json()["tasks"]} == {"scheduled"}
    rows = Client(cluster.workers[0].url).statuses(ids)
    assert {(rows[t] or {}).get("status") for t in ids} == {"scheduled"}
    records = [json.loads(r.value) for r in read_all(broker.bootstrap, f"{cluster.app_id}-task-events")]
    carried = [e["id"] for r in records for e in (r["events"] if r["kind"] == "batch" else [r])]
    assert sorted(carried) == sorted(ids)
    assert len(records) <= cluster.partitions
