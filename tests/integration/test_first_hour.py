"""What a new user meets in the first hour: task modules, submit-time checks, ports,
data folders and a broker that goes away (issue "The first hour")."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cluster import ROOT, Cluster, free_port, stop_process
from tests.support.wait import wait_for
from yadtq_app.broker import EmbeddedBroker, port_is_free

pytestmark = pytest.mark.integration

ONLY_TEST_TASKS = {"YADTQ_TASK_MODULES": "tests.support.tasks"}


def post_task(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/tasks", json=body, timeout=10)


def test_only_the_listed_task_modules_register(cluster_factory: Any) -> None:
    cluster = cluster_factory(extra_env=ONLY_TEST_TASKS).start(1)
    url = cluster.workers[0].url
    r = post_task(url, {"task": "multiply", "args": [4, 5]})
    assert r.status_code == 400, r.text
    assert r.json()["reason"] == "unknown-task"
    assert post_task(url, {"task": "tests.concat", "args": ["a", "b"]}).status_code == 202


def test_arguments_are_bound_at_submit(shared_cluster: Any) -> None:
    url = shared_cluster.workers[0].url
    r = post_task(url, {"task": "multiply", "args": [4]})
    assert r.status_code == 400, r.text
    assert r.json()["reason"] == "bad-arguments"
    assert "missing a required argument: 'b'" in r.json()["error"]
    r = post_task(url, {"task": "tests.concat", "args": ["a"], "kwargs": {"c": 1}})
    assert r.status_code == 400 and "unexpected keyword argument 'c'" in r.json()["error"], r.text
    assert post_task(url, {"task": "tests.concat", "args": ["a"]}).status_code == 202


def test_workers_with_different_tasks_are_shown_and_refused(cluster_factory: Any) -> None:
    cluster = cluster_factory()
    full = cluster.add(1)[0]
    lean = cluster.add(1, extra_env=ONLY_TEST_TASKS)[0]
    for w in cluster.workers:
        w.wait_healthy(90)
    cluster.wait_settled(timeout=90)

    def view() -> Any:
        rows = {w["id"]: w for w in cluster.workers_view(full)}
        return rows if all(rows[w.worker_id]["tasks_differ"] for w in cluster.workers) else None

    rows = wait_for(view, timeout=30, message="/workers to show the differing task sets")
    assert "multiply" in rows[full.worker_id]["tasks"] and "multiply" not in rows[lean.worker_id]["tasks"]
    assert rows[full.worker_id]["tasks_digest"] != rows[lean.worker_id]["tasks_digest"]

    def refused(url: str) -> Any:
        # Each worker learns the others' tasks from /workers once a heartbeat.
        r = post_task(url, {"task": "multiply", "args": [4, 5]})
        return r if r.json().get("reason") == "not-on-every-worker" else None

    for w in cluster.workers:
        r = wait_for(lambda w=w: refused(w.url), timeout=30, message=f"multiply to be refused by worker {w.index}")
        assert r.status_code == 400 and r.json()["workers_without"] == [lean.worker_id], r.text
    r = post_task(full.url, {"task": "no.such.task"})
    assert r.status_code == 400 and r.json()["reason"] == "unknown-task"
    assert post_task(full.url, {"task": "tests.concat", "args": ["a", "b"]}).status_code == 202
    for w in cluster.workers:
        wait_for(lambda w=w: "registers other tasks than this one" in w.log_text(), timeout=30,
                 message=f"worker {w.index} to warn of the other's tasks")


def _own_broker(tmp_path: Path, port: int, n: int) -> EmbeddedBroker:
    """An embedded broker of this test's own on ``port`` (once the previous one let go of it)."""
    wait_for(lambda: port_is_free("127.0.0.1", port), timeout=30, message=f"port {port} to be free")
    return EmbeddedBroker("127.0.0.1", port, log_path=str(tmp_path / f"broker-{n}.log")).start()


def _worker_on_own_broker(tmp_path: Path, *, lost_after: float) -> tuple[int, EmbeddedBroker, Cluster, Any]:
    """A broker of the test's own on a free port and one healthy worker on it (the
    caller stops both): ``(port, broker, cluster, worker)``."""
    port = free_port()
    broker = _own_broker(tmp_path, port, 1)
    cluster = Cluster(broker.url, tmp_path / "cluster", extra_env={"YADTQ_BROKER_LOST_AFTER": str(lost_after)})
    try:
        w = cluster.add(1)[0]
        w.wait_healthy(90)
    except BaseException:
        cluster.stop()
        broker.stop()
        raise
    return port, broker, cluster, w


def _run_some_tasks(url: str, n: int = 30) -> None:
    from yadtq_app import Client

    client = Client(url)
    handles = [client.submit("add", i, 1) for i in range(n)]
    assert [h.result(timeout=60) for h in handles] == [i + 1 for i in range(n)]


def test_a_worker_outlives_its_embedded_broker(tmp_path: Path) -> None:
    """The broker restarts (empty) under a stopped worker, then under a running one: the
    worker rebuilds its tables instead of ConsistencyError, and waits (503) meanwhile."""
    port, broker, cluster, w = _worker_on_own_broker(tmp_path, lost_after=3)
    try:
        _run_some_tasks(w.url)
        # 1. stopped worker, new broker: its tables are stale; it says so and rebuilds.
        w.stop()
        broker.stop()
        broker = _own_broker(tmp_path, port, 2)
        w.start()
        w.wait_healthy(90)
        _run_some_tasks(w.url)
        assert "do not belong to this broker" in w.log_text()
        assert "ConsistencyError" not in w.log_text()
        # 2. running worker, broker away: 503, same process; back with a new broker.
        pid = w.pid
        broker.stop()
        wait_for(lambda: httpx.get(w.url + "/health", timeout=2).status_code == 503, timeout=30,
                 message="the worker to answer 503 while the broker is away")
        assert w.alive and w.pid == pid
        broker = _own_broker(tmp_path, port, 3)
        w.wait_healthy(90)
        _run_some_tasks(w.url)
        assert w.alive and w.pid == pid
        assert w.log_text().count("do not belong to this broker") == 2
    finally:
        cluster.stop()
        broker.stop()


def _faust_worker(env: dict[str, str], cwd: Path, port: int, log: Path) -> "subprocess.Popen[bytes]":
    faust = str(Path(sys.executable).parent / "faust")
    with open(log, "ab") as out:
        return subprocess.Popen([faust, "-A", "yadtq_app", "worker", "-l", "info", "--web-port", str(port)],
                                env=env, cwd=str(cwd), stdout=out, stderr=subprocess.STDOUT)


def test_faust_web_port_decides_data_folder_and_url(broker: Any, tmp_path: Path) -> None:
    """``faust -A yadtq_app worker --web-port N`` with no YADTQ_WEB_PORT: the folder and the
    advertised URL follow N; a second worker on the same folder stops with one clear line."""
    tag = os.urandom(4).hex()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YADTQ_")}
    env.update(YADTQ_BROKER_URL=broker.url, YADTQ_APP_ID=f"yp-{tag}", YADTQ_TASK_TOPIC=f"tp-{tag}",
               PYTHONPATH=str(ROOT))
    port = free_port()
    first = _faust_worker(env, tmp_path, port, tmp_path / "first.log")
    try:
        url = f"http://127.0.0.1:{port}"
        rows = wait_for(lambda: httpx.get(f"{url}/workers", timeout=2).json()["workers"], timeout=90,
                        message="the faust-started worker in /workers")
        assert [w["url"] for w in rows] == [url]
        assert (tmp_path / ".yadtq" / f"worker-{port}" / "worker.lock").exists()
        assert not (tmp_path / ".yadtq" / "worker-6066").exists()

        second = _faust_worker(dict(env, YADTQ_DATA_DIR=str(tmp_path / ".yadtq" / f"worker-{port}")), tmp_path,
                               free_port(), tmp_path / "second.log")
        try:
            assert second.wait(60) == 78
        finally:
            stop_process(second)
        text = (tmp_path / "second.log").read_text()
        assert "is in use by another worker" in text and "Traceback" not in text, text
        assert first.poll() is None
    finally:
        stop_process(first)


YADTQ = [sys.executable, "-m", "yadtq_app.cli"]


def test_yadtq_run_ports(tmp_path: Path) -> None:
    """``yadtq run --port/--web-port``: a taken port is one line naming the option; the
    banner's hints carry ``--url`` when the port is not the default."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        for args, option in ((["--web-port", str(taken), "--port", str(free_port())], "--web-port"),
                             (["--port", str(taken), "--web-port", str(free_port())], "--port")):
            r = subprocess.run(YADTQ + ["run", *args], capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
            assert r.returncode == 2, r.stderr
            assert len(r.stderr.strip().splitlines()) == 1 and option in r.stderr and str(taken) in r.stderr, r.stderr
    web_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YADTQ_")}
    with open(tmp_path / "run.log", "wb") as out:
        proc = subprocess.Popen(YADTQ + ["run", "--port", str(free_port()), "--web-port", str(web_port)],
                                cwd=str(tmp_path), env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        text = wait_for(lambda: "Ctrl-C stops" in (tmp_path / "run.log").read_text()
                        and (tmp_path / "run.log").read_text(), timeout=120, message="the banner")
        assert f"yadtq submit multiply 4 5 --wait --url http://127.0.0.1:{web_port}" in text
        assert f"yadtq workers --url http://127.0.0.1:{web_port}" in text
        assert f"Dashboard: http://127.0.0.1:{web_port}/" in text
        assert httpx.get(f"http://127.0.0.1:{web_port}/", timeout=10).text.startswith("<!doctype html>")
        # Quiet by default: no Faust banner box or INFO lines, and the hints come last.
        assert "[INFO]" not in text and "ƒaµS†" not in text, text
        assert text.strip().splitlines()[-1] == "Ctrl-C stops the workers and the broker."
        r = subprocess.run(YADTQ + ["submit", "multiply", "4", "5", "--wait", "--url", f"http://127.0.0.1:{web_port}"],
                           capture_output=True, text=True, timeout=60)
        assert r.stdout.strip() == "20", r.stderr
    finally:
        stop_process(proc, signal.SIGINT, timeout=60)


def test_info_asks_a_worker_and_local_reads_this_folder(shared_cluster: Any, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YADTQ_")}
    env.update(YADTQ_BROKER_URL=shared_cluster.env["YADTQ_BROKER_URL"], PYTHONPATH=str(ROOT))
    r = subprocess.run(YADTQ + ["info", "--json", "--url", shared_cluster.workers[0].url], capture_output=True,
                       text=True, timeout=60, env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    tasks = {t["name"]: t for t in info["tasks"]}
    assert "tests.concat" in tasks and info["worker"] == shared_cluster.workers[0].worker_id  # the worker's tasks
    assert tasks["multiply"]["timeout"] == 300 and tasks["multiply"]["max_retries"] == 0  # effective values
    # --local: this folder's modules, imported from the folder the command runs in.
    (tmp_path / "mytasks.py").write_text("from yadtq_app import task\n\n@task(max_retries=3)\ndef mine(): ...\n")
    script = str(Path(sys.executable).parent / "yadtq")
    r = subprocess.run([script, "info", "--local"], capture_output=True, text=True, timeout=60, cwd=str(tmp_path),
                       env=dict(env, YADTQ_TASK_MODULES="mytasks"))
    assert r.returncode == 0, r.stderr
    assert "mine" in r.stdout and "max_retries 3" in r.stdout
    assert re.search(r"\b1 partition\b(?!s)", r.stdout) and not re.search(r"\b1 partitions\b", r.stdout)


def test_small_inconsistencies(shared_cluster: Any) -> None:
    """Every 4xx has a reason; effective options in a status; the CLI's url, wait and status output."""
    url = shared_cluster.workers[0].url
    for method, path, body in (("POST", "/tasks", b"{not json"), ("POST", "/tasks/status", b"{not json"),
                               ("POST", "/tasks", b"[1]"), ("GET", "/dead-letters?limit=x", None),
                               ("GET", "/no/such/path", None), ("DELETE", "/tasks", None)):
        r = httpx.request(method, url + path, content=body, timeout=10)
        assert 400 <= r.status_code < 500 and r.json().get("reason"), (method, path, r.status_code, r.text)

    from yadtq_app import Client

    client = Client(url)
    row = client.submit("tests.fail", "x").wait(30)
    assert row["max_retries"] == 0 and row["timeout"] == 300, row  # the effective values, not null
    row = client.send_task("tests.fail", ["x"], max_retries=1, timeout=7).wait(30)
    assert row["max_retries"] == 1 and row["timeout"] == 7, row

    host_port = url.split("://", 1)[1]
    r = subprocess.run(YADTQ + ["submit", "multiply", "4", "5", "--wait", "--url", host_port], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "20", r.stderr  # --url without http://
    r = subprocess.run(YADTQ + ["submit", "tests.fail", "boom", "--wait", "--url", url], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.startswith("yadtq: task ") and "RuntimeError: boom" in r.stderr
    later = client.send_task("add", [1, 2], countdown=60)
    client.cancel(later.id)
    wait_for(lambda: later.info()["status"] == "cancelled", timeout=30, message="the cancel")
    r = subprocess.run(YADTQ + ["submit", "add", "1", "2", "--task-id", later.id, "--wait", "--url", url],
                       capture_output=True, text=True, timeout=60)
    assert "was cancelled" in r.stderr and "failed" not in r.stderr, r.stderr
    r = subprocess.run(YADTQ + ["status", row["task-id"], "--url", url], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    history = lines[lines.index(next(x for x in lines if x.startswith("history"))) + 1:]
    assert history[0].split() == ["ATTEMPT", "WORKER", "STATUS", "STARTED", "TOOK", "ERROR"], r.stdout
    assert len(history) == 3 and "RuntimeError" in history[1], r.stdout  # two attempts


def test_a_worker_started_before_its_broker_waits_with_503(tmp_path: Path) -> None:
    port = free_port()
    cluster = Cluster(f"kafka://127.0.0.1:{port}", tmp_path / "cluster")
    broker = None
    try:
        w = cluster.add(1)[0]

        def unavailable() -> Any:
            r = httpx.get(w.url + "/health", timeout=2)
            return r.status_code == 503 and r.json().get("reason") == "broker-unavailable"

        wait_for(unavailable, timeout=60, message="503 broker-unavailable while there is no broker")
        assert w.alive
        assert w.log_text().count("cannot reach the broker") == 1  # said once, not once a second
        broker = _own_broker(tmp_path, port, 1)
        w.wait_healthy(90)
        _run_some_tasks(w.url, 3)
    finally:
        cluster.stop()
        if broker is not None:
            broker.stop()


def test_a_broker_replaced_under_a_running_worker_gets_yadtqs_topics(tmp_path: Path) -> None:
    """The broker is replaced by an empty one while the worker runs: the worker's own
    clients reconnect first and must not make the broker auto-create yadtq's topics with
    its own partition count; the restarted worker creates them and runs tasks."""
    from yadtq_app.admin import describe_topics

    port, broker, cluster, w = _worker_on_own_broker(tmp_path, lost_after=120)
    try:
        pid = w.pid
        broker.stop()
        broker = _own_broker(tmp_path, port, 2)
        wait_for(lambda: "do not belong to this broker" in w.log_text(), timeout=60,
                 message="the restarted worker to find the new broker")
        w.wait_healthy(90)
        _run_some_tasks(w.url)
        assert w.alive and w.pid == pid
        assert asyncio.run(describe_topics(f"127.0.0.1:{port}", [cluster.task_topic])) == {cluster.task_topic: 8}
    finally:
        cluster.stop()
        broker.stop()
