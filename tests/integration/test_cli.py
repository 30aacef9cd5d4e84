"""The ``yadtq`` command and ``faust -A yadtq_app worker`` against real processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cluster import ROOT, free_port, stop_process
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

YADTQ = [sys.executable, "-m", "yadtq_app.cli"]


def run(args: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(YADTQ + args, capture_output=True, text=True, timeout=120, cwd=str(ROOT), **kw)


def test_broker_refuses_a_taken_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run(["broker", "--port", str(port)])
    assert r.returncode != 0
    assert "already in use" in r.stderr and r.stderr.startswith("yadtq:")


def test_broker_runs_until_sigterm() -> None:
    port = free_port()
    proc = subprocess.Popen(YADTQ + ["broker", "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=str(ROOT))
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert f"127.0.0.1:{port}" in line
        from yadtq_app.broker import kafka_api_versions_ok

        assert kafka_api_versions_ok("127.0.0.1", port)
        proc.terminate()
        assert proc.wait(30) == 0
        wait_for(lambda: not kafka_api_versions_ok("127.0.0.1", port, timeout=0.2), timeout=10,
                 message="the broker to stop")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_kafka_runs_until_sigterm_and_says_how_to_use_it(tmp_path: Path) -> None:
    from tests.support.brokers import kafka_or_skip
    from yadtq_app.broker import kafka_api_versions_ok

    kafka_or_skip()
    port = free_port()
    # --max-lifetime: should this test kill the command, its JVM still goes within minutes.
    proc = subprocess.Popen(YADTQ + ["kafka", "--port", str(port), "--data-dir", str(tmp_path / "kafka"),
                                     "--max-lifetime", "300"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT))
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # the process ends (and so does this loop) if the start fails
            lines.append(line)
            if "Ctrl-C" in line:
                break
        text = "".join(lines)
        assert f"YADTQ_BROKER_URL='kafka://127.0.0.1:{port}'" in text, \
            text + (proc.stderr.read() if proc.poll() else "")
        assert "YADTQ_BROKER_PROFILE=kafka" in text
        assert kafka_api_versions_ok("127.0.0.1", port)
        proc.terminate()
        assert proc.wait(60) == 0
        assert not kafka_api_versions_ok("127.0.0.1", port, timeout=0.2)  # stop() waited for the JVM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (tmp_path / "kafka" / "node-1" / "kafka.log").stat().st_size > 0


def test_submit_status_workers_info(cluster_factory: Any) -> None:
    cluster = cluster_factory().start(1)
    url = cluster.workers[0].url
    env = dict(os.environ, **cluster.env)

    r = run(["submit", "multiply", "4", "5", "--wait", "--url", url])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "20"

    r = run(["submit", "echo", '{"a": 1}', "--url", url, "--json"])
    task_id = json.loads(r.stdout)["task-id"]
    wait_for(lambda: json.loads(run(["status", task_id, "--url", url, "--json"]).stdout)["status"] == "success",
             timeout=30, message="echo to finish")
    r = run(["status", task_id, "--url", url])
    assert r.returncode == 0 and "success" in r.stdout and '{"a": 1}' in r.stdout

    r = run(["submit", "divide", "1", "0", "--wait", "--url", url])
    assert r.returncode == 1 and "ZeroDivisionError" in r.stderr

    r = run(["submit", "nope", "--url", url])
    assert r.returncode == 2 and "unknown task" in r.stderr

    r = run(["status", "no-such-id", "--url", url])
    assert r.returncode == 2 and r.stderr.startswith("yadtq:")

    r = run(["workers", "--url", url, "--json"])
    workers = json.loads(r.stdout)
    assert [w["id"] for w in workers] == [cluster.workers[0].worker_id] and workers[0]["alive"]
    r = run(["workers", "--url", url])
    assert cluster.workers[0].worker_id in r.stdout and "yes" in r.stdout

    # countdown, cancel
    r = run(["submit", "add", "1", "2", "--countdown", "30", "--url", url])
    later = r.stdout.strip()
    r = run(["cancel", later, "--url", url])
    assert r.returncode == 0 and "cancel requested" in r.stdout, r.stderr
    wait_for(lambda: json.loads(run(["status", later, "--url", url, "--json"]).stdout)["status"] == "cancelled",
             timeout=30, message="the countdown task to be cancelled")
    r = run(["cancel", later, "--url", url])
    assert r.returncode == 2 and "cancelled" in r.stderr

    # retries used up: dead letter, listed; then resubmitted
    r = run(["submit", "tests.poison", "cli", "--max-retries", "1", "--wait", "--url", url])
    assert r.returncode == 1 and "RuntimeError" in r.stderr
    wait_for(lambda: "retries-exhausted" in run(["dead-letters", "--url", url]).stdout, timeout=30,
             message="the dead letter in `yadtq dead-letters`")
    letters = json.loads(run(["dead-letters", "--url", url, "--json"]).stdout)
    poisoned = next(d for d in letters if d["reason"] == "retries-exhausted")
    assert len(poisoned["history"]) == 2
    r = run(["retry", poisoned["task-id"], "--url", url])
    assert r.returncode == 0 and "queued again" in r.stdout, r.stderr
    wait_for(lambda: json.loads(run(["status", poisoned["task-id"], "--url", url, "--json"]).stdout)["attempts"] >= 3,
             timeout=30, message="the resubmitted task to run again")

    r = run(["info", "--json", "--url", url], env=env)
    info = json.loads(r.stdout)
    topics = {t["name"]: t for t in info["topics"]}
    assert topics[cluster.task_topic]["partitions"] == cluster.partitions
    assert topics[cluster.task_topic]["broker_partitions"] == cluster.partitions
    assert {"add", "multiply", "divide", "sleep", "echo", "subtract"} <= {t["name"] for t in info["tasks"]}


def test_faust_command_starts_a_worker(broker: Any, tmp_path: Path) -> None:
    port = free_port()
    tag = os.urandom(4).hex()
    env = dict(os.environ, **broker.env, YADTQ_BROKER_URL=broker.url, YADTQ_APP_ID=f"yf-{tag}",
               YADTQ_TASK_TOPIC=f"tf-{tag}", YADTQ_WEB_PORT=str(port), YADTQ_DATA_DIR=str(tmp_path / "data"),
               PYTHONPATH=str(ROOT))
    faust = str(Path(sys.executable).parent / "faust")
    log = open(tmp_path / "faust.log", "wb")
    proc = subprocess.Popen([faust, "-A", "yadtq_app", "worker", "-l", "info", "--web-port", str(port)],
                            env=env, cwd=str(tmp_path), stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.post(f"{url}/tasks", json={"task": "add", "args": [1, 2]}, timeout=2).status_code == 202,
                 timeout=60, message="the faust-started worker to accept a task")
        from yadtq_app import Client

        assert Client(url).submit("add", 20, 22).result(timeout=30) == 42
    finally:
        stop_process(proc)
        log.close()
