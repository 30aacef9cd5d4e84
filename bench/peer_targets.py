"""The peers under measurement: Celery 5 (prefork, 2 processes) and taskiq (2 worker processes).

Both use the Redis the comparison starts, as broker and result backend, and run the
same ``add`` as yadtq (bench/peers/); "Celery AK" is Celery with a fresh one-node Apache
Kafka as its broker instead (kombu's ``confluentkafka`` transport; results still on
Redis). Each run gets a freshly started worker and an emptied Redis. Results are read
with each system's own API: ``AsyncResult.get`` (Celery; its Redis backend pushes
results over pub/sub) and ``wait_result`` (taskiq; it polls Redis every
``check_interval``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from bench.brokers import BenchBroker, start_broker
from bench.common import ThroughputSample, bounded_gather
from bench.procs import BenchError, BoundedProcess, RedisServer

__all__ = ["CeleryTarget", "TaskiqTarget", "ROOT"]

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]


def _peer_env(redis: RedisServer, extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"BENCH_REDIS_URL": redis.url, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"})
    env.update(extra or {})
    return env


class CeleryTarget:
    """``celery worker --pool prefork --concurrency 2``, Redis result backend (db 1); its
    broker Redis (db 0), or with ``kafka`` a fresh one-node Apache Kafka ("Celery AK")."""

    def __init__(self, redis: RedisServer, workdir: Path, *, lifetime: float, kafka: bool = False) -> None:
        self.redis = redis
        self.workdir = workdir
        self.lifetime = lifetime
        self.kafka = kafka
        self.name = "celery-ak" if kafka else "celery"
        self.worker: Optional[BoundedProcess] = None
        self.broker: Optional[BenchBroker] = None
        self.add: Any = None

    def start(self) -> "CeleryTarget":
        from bench.peers import redis_url
        from bench.peers.celery_app import build

        self.redis.flush()
        env: dict[str, str] = {}
        if self.kafka:
            # A folder of its own each time: LocalKafka keeps using a data folder it formatted.
            kafka_dir = Path(tempfile.mkdtemp(prefix="celery-kafka-", dir=self.workdir))
            self.broker = start_broker("kafka", kafka_dir, lifetime=self.lifetime)
            env["BENCH_CELERY_BROKER"] = f"confluentkafka://{self.broker.bootstrap}"
        app, self.add = build(env.get("BENCH_CELERY_BROKER") or redis_url(0))
        cmd = [sys.executable, "-m", "celery", "-A", "bench.peers.celery_app", "worker", "--pool", "prefork",
               "--concurrency", "2", "--loglevel", "WARNING", "--hostname", f"bench-{os.getpid()}@127.0.0.1"]
        self.worker = BoundedProcess(f"{self.name} worker", cmd, lifetime=self.lifetime,
                                     log_path=self.workdir / f"{self.name}.log", env=_peer_env(self.redis, env),
                                     cwd=ROOT).start()
        self._await_ready(app)
        return self

    def _await_ready(self, app: Any, timeout: float = 60.0) -> None:
        """Until the worker answers a ``ping``; on Kafka, which has no broadcast for
        Celery's remote control, until it has run one task."""
        assert self.worker is not None
        deadline = time.monotonic() + timeout
        if self.kafka:
            result = self.add.delay(0, 0)
            while time.monotonic() < deadline:
                self.worker.check_alive()
                if result.ready():
                    logger.info("celery worker on Apache Kafka ran its first task")
                    return
                time.sleep(0.05)  # between polls of the first result, while the worker starts
        while time.monotonic() < deadline:
            self.worker.check_alive()
            replies = app.control.ping(timeout=0.5)
            if replies:
                logger.info("celery worker answers: %s", replies)
                return
        raise BenchError(f"the celery worker did not answer in {timeout:g} s:\n{self.worker.tail()}")

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def warm_up(self, n: int = 20) -> None:
        self.throughput(n)

    def throughput(self, n: int) -> ThroughputSample:
        timeout = max(120.0, n / 20)
        t0 = time.perf_counter()
        results = [self.add.delay(i, i) for i in range(n)]
        t_sub = time.perf_counter()
        results[-1].get(timeout=timeout)
        t_last = time.perf_counter()
        for i, r in enumerate(results):
            value = r.get(timeout=timeout)
            if value != 2 * i or r.state != "SUCCESS":
                raise BenchError(f"celery task {r.id}: {r.state} {value!r}, expected SUCCESS {2 * i}")
        t1 = time.perf_counter()
        return ThroughputSample(n, t_sub - t0, t1 - t0, extra={"last_done_s": t_last - t0})

    def latency(self, k: int) -> list[float]:
        out = []
        for i in range(k):
            t0 = time.perf_counter()
            value = self.add.delay(i, i).get(timeout=30, interval=0.001)
            out.append((time.perf_counter() - t0) * 1000)
            if value != 2 * i:
                raise BenchError(f"celery add({i}, {i}) gave {value!r}")
        return out


class TaskiqTarget:
    """``taskiq worker --workers 2`` with a Redis broker and the Redis result backend (db 2)."""

    name = "taskiq"

    def __init__(self, redis: RedisServer, workdir: Path, *, lifetime: float, broker_kind: str = "stream") -> None:
        self.redis = redis
        self.workdir = workdir
        self.lifetime = lifetime
        self.broker_kind = broker_kind
        self.worker: Optional[BoundedProcess] = None

    def start(self) -> "TaskiqTarget":
        self.redis.flush()
        os.environ["BENCH_TASKIQ_BROKER"] = self.broker_kind  # the client side reads it at import
        cmd = [sys.executable, "-m", "taskiq", "worker", "bench.peers.taskiq_app:broker", "--workers", "2",
               "--log-level", "WARNING"]
        self.worker = BoundedProcess("taskiq worker", cmd, lifetime=self.lifetime, log_path=self.workdir / "taskiq.log",
                                     env=_peer_env(self.redis, {"BENCH_TASKIQ_BROKER": self.broker_kind}),
                                     cwd=ROOT).start()
        self._await_ready()
        return self

    def _await_ready(self, timeout: float = 60.0) -> None:
        """Until both worker processes wait on the queue (a stream consumer group only sees later messages)."""
        import redis

        from bench.peers.taskiq_app import QUEUE

        assert self.worker is not None
        client = redis.Redis(host="127.0.0.1", port=self.redis.port, db=2)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.worker.check_alive()
                if self._waiting_consumers(client, QUEUE) >= 2:
                    logger.info("taskiq: 2 worker processes wait on %s", QUEUE)
                    return
                time.sleep(0.1)
        finally:
            client.close()
        raise BenchError(f"the taskiq workers did not start in {timeout:g} s:\n{self.worker.tail()}")

    def _waiting_consumers(self, client: Any, queue: str) -> int:
        """Connections blocked reading the queue (consumers appear in XINFO only once they got a message)."""
        cmd = "brpop" if self.broker_kind == "list" else "xreadgroup"
        return sum(1 for c in client.client_list() if c.get("cmd") == cmd and str(c.get("db")) == "2")

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    def warm_up(self, n: int = 20) -> None:
        self.throughput(n)

    def throughput(self, n: int) -> ThroughputSample:
        return asyncio.run(self._throughput(n))

    def latency(self, k: int, poll: float = 0.001) -> list[float]:
        return asyncio.run(self._latency(k, poll))

    async def _throughput(self, n: int) -> ThroughputSample:
        from bench.peers.taskiq_app import add, broker

        timeout = max(120.0, n / 20)
        await broker.startup()
        try:
            t0 = time.perf_counter()
            tasks = await bounded_gather(add.kiq(i, i) for i in range(n))
            t_sub = time.perf_counter()
            await tasks[-1].wait_result(check_interval=0.005, timeout=timeout)
            t_last = time.perf_counter()
            results = await bounded_gather(t.wait_result(check_interval=0.01, timeout=timeout) for t in tasks)
            t1 = time.perf_counter()
        finally:
            await broker.shutdown()
        for i, (t, r) in enumerate(zip(tasks, results, strict=True)):
            if r.is_err or r.return_value != 2 * i:
                raise BenchError(f"taskiq task {t.task_id}: error {r.error!r}, value {r.return_value!r}")
        return ThroughputSample(n, t_sub - t0, t1 - t0, extra={"last_done_s": t_last - t0})

    async def _latency(self, k: int, poll: float) -> list[float]:
        from bench.peers.taskiq_app import add, broker

        out = []
        await broker.startup()
        try:
            for i in range(k):
                t0 = time.perf_counter()
                task = await add.kiq(i, i)
                r = await task.wait_result(check_interval=poll, timeout=30)
                out.append((time.perf_counter() - t0) * 1000)
                if r.is_err or r.return_value != 2 * i:
                    raise BenchError(f"taskiq add({i}, {i}): error {r.error!r}, value {r.return_value!r}")
        finally:
            await broker.shutdown()
        return out
