"""Real worker processes against the real embedded broker, one cluster per test."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Optional, Sequence

import httpx

from .wait import wait_for

ROOT = Path(__file__).resolve().parents[2]


def stop_process(proc: "subprocess.Popen[Any]", sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    """Send ``sig`` to ``proc`` if it runs; SIGKILL it if it outlives ``timeout``."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WorkerProcess:
    """One ``yadtq worker`` subprocess with its own web port, data dir and log."""

    def __init__(self, cluster: "Cluster", index: int, *, web_host: str = "127.0.0.1",
                 wrap: Sequence[str] = (), extra_env: Optional[dict[str, str]] = None) -> None:
        self.cluster = cluster
        #: Environment of this worker only, over the cluster's (e.g. other task modules).
        self.extra_env = dict(extra_env or {})
        self.index = index
        #: The address its HTTP API listens on and advertises to the other workers.
        self.web_host = web_host
        #: A command prefix, e.g. ``ip netns exec NAME`` to run it in a network namespace.
        self.wrap = list(wrap)
        self.web_port = free_port()
        self.worker_id = f"w{index}-{cluster.tag}"
        self.data_dir = cluster.workdir / f"data-{index}"
        self.log_path = cluster.workdir / f"worker-{index}.log"
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://{self.web_host}:{self.web_port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.cluster.env)
        env.update({
            "YADTQ_WEB_PORT": str(self.web_port),
            "YADTQ_WEB_HOST": self.web_host,
            "YADTQ_DATA_DIR": str(self.data_dir),
            "YADTQ_WORKER_ID": self.worker_id,
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.extra_env)
        return env

    def start(self) -> "WorkerProcess":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = open(self.log_path, "ab")
        log.write(f"\n===== start #{self.starts + 1} =====\n".encode())
        log.flush()
        self.proc = subprocess.Popen([*self.wrap, sys.executable, "-m", "yadtq_app.cli", "worker"], env=self.env(),
                                     cwd=str(self.cluster.workdir), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        self.starts += 1
        return self

    def wait_healthy(self, timeout: float = 60.0) -> None:
        def healthy() -> bool:
            assert self.proc is not None and self.proc.poll() is None, f"worker {self.index} exited:\n{self.tail()}"
            return httpx.get(self.url + "/health", timeout=1).status_code == 200

        wait_for(healthy, timeout=timeout, message=f"worker {self.index} to answer")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def wipe(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


class Cluster:
    """Workers sharing one app id (so unique topics and consumer group per test)."""

    def __init__(self, broker_url: str, workdir: Path, *, partitions: int = 8,
                 extra_env: Optional[dict[str, str]] = None) -> None:
        self.tag = uuid.uuid4().hex[:8]
        self.app_id = f"yt-{self.tag}"
        self.task_topic = f"tasks-{self.tag}"
        self.partitions = partitions
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.env = {
            "YADTQ_BROKER_URL": broker_url,
            "YADTQ_APP_ID": self.app_id,
            "YADTQ_TASK_TOPIC": self.task_topic,
            "YADTQ_PARTITIONS": str(partitions),
            "YADTQ_TASK_MODULES": "yadtq_app.examples,tests.support.tasks",
            "YADTQ_LOG_LEVEL": "info",
            "PYTHONPATH": str(ROOT),
        }
        self.env.update(extra_env or {})
        self.workers: list[WorkerProcess] = []

    def add(self, n: int = 1, *, web_host: str = "127.0.0.1", wrap: Sequence[str] = (),
            extra_env: Optional[dict[str, str]] = None) -> list[WorkerProcess]:
        new = [WorkerProcess(self, len(self.workers) + i, web_host=web_host, wrap=wrap, extra_env=extra_env)
               for i in range(n)]
        self.workers.extend(new)
        for w in new:
            w.start()
        return new

    def start(self, n: int, *, timeout: float = 90.0) -> "Cluster":
        self.add(n)
        for w in self.workers:
            w.wait_healthy(timeout)
        self.wait_settled(timeout=timeout)
        return self

    @property
    def ledger_path(self) -> Path:
        """Where ``tests.ledgered`` tasks write (``YADTQ_TEST_LEDGER``)."""
        return Path(self.env["YADTQ_TEST_LEDGER"])

    def log_size(self) -> list[int]:
        """How long each worker's log is now (to read only what a test added)."""
        return [len(w.log_text()) if w.log_path.exists() else 0 for w in self.workers]

    def running(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.alive]

    def workers_view(self, via: Optional[WorkerProcess] = None) -> list[dict[str, Any]]:
        w = via or self.running()[0]
        resp = httpx.get(w.url + "/workers", timeout=5)
        resp.raise_for_status()
        return list(resp.json()["workers"])

    def wait_settled(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Until every running worker is alive in /workers and their partitions cover all, once each."""
        running = {w.worker_id for w in self.running()}

        def settled() -> Optional[list[dict[str, Any]]]:
            view = [w for w in self.workers_view() if w["alive"] and w["id"] in running]
            if {w["id"] for w in view} != running:
                return None
            parts = sorted(p for w in view for p in w["partitions"])
            if parts != list(range(self.partitions)):
                return None
            for w in self.running():  # every worker answers reads (not rebalancing)
                if httpx.get(w.url + "/health", timeout=2).json().get("rebalancing"):
                    return None
            return view

        return wait_for(settled, timeout=timeout, interval=0.2, message="the cluster to settle")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every running worker at once, then wait; SIGKILL what outlives ``timeout``."""
        running = [w for w in self.workers if w.alive]
        for w in running:
            w.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for w in running:
            assert w.proc is not None
            try:
                w.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.kill()

    def dump_logs(self) -> str:
        return "\n\n".join(f"--- worker {w.index} ({w.worker_id}) ---\n{w.tail(80)}" for w in self.workers)
