"""The bare-Faust floor under measurement: a fresh broker and N ``bench/floor_app.py`` workers.

The workers form one consumer group; each is a process under ``timeout``. The client is
yadtq's Kafka path's: an aiokafka producer (defaults) writes the same wire-format
records onto the task topic, keyed by id, and a consumer of the table's changelog counts
the rows written (each checked: ``2i`` for task ``i``). Measuring starts only once the
group has settled: rounds of one warm-up task per partition until one round's rows come
from every worker (so each holds partitions and has processed from them).

Round trips (:meth:`FloorTarget.latency`) use the same client one task at a time: the
task written (``send_and_wait``), then its row read from the changelog. That is the bare
worker's own way to hand a result back; on Apache Kafka the client's held fetch answers
as soon as the row is written, so the figure is what Faust and Kafka themselves take.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Optional

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.brokers import BenchBroker, start_broker
from bench.common import Reaper, ThroughputSample
from bench.floor_app import CHANGELOG, PARTITIONS, TOPIC
from bench.procs import BenchError, BoundedProcess, cpu_seconds
from bench.yadtq_target import _wire
from tests.support.cluster import free_port

__all__ = ["FloorTarget"]

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]


class FloorTarget:
    """``workers`` bare Faust workers in one group on their own fresh ``broker``
    (``"embedded"`` or ``"kafka"``); every process lives at most ``lifetime`` seconds."""

    def __init__(self, workers: int, workdir: Path, *, lifetime: float, broker: str = "embedded") -> None:
        if not 1 <= workers <= PARTITIONS:
            raise ValueError(f"{workers} workers: from 1 to {PARTITIONS} (the task topic's partitions)")
        self.n_workers = workers
        self.workdir = workdir
        self.lifetime = lifetime
        self.broker_kind = broker
        self.broker: Optional[BenchBroker] = None
        self.reaper: Optional[Reaper] = None
        self.workers: list[BoundedProcess] = []
        self.pids: list[int] = []

    def start(self, settle_timeout: float = 120.0) -> "FloorTarget":
        """Start broker and workers; return once every worker holds partitions."""
        broker = self.broker = start_broker(self.broker_kind, self.workdir, lifetime=self.lifetime)
        self.reaper = Reaper(f"floor broker ({self.broker_kind})", broker.pids, self.lifetime).start()
        asyncio.run(_create_topics(broker.bootstrap))
        for i in range(self.n_workers):
            env = dict(os.environ, FLOOR_BROKER=broker.url, FLOOR_PROFILE=self.broker_kind,
                       FLOOR_DATA=str(self.workdir / f"data-{i}"), FLOOR_WORKER=f"w{i}",
                       FLOOR_WEB_PORT=str(free_port()), PYTHONPATH=str(ROOT))
            cmd = [sys.executable, "-m", "bench.floor_app", "worker", "-l", "warn", "--without-web"]
            self.workers.append(BoundedProcess(f"bare Faust worker {i}", cmd, lifetime=self.lifetime,
                                               log_path=self.workdir / f"floor-worker-{i}.log", env=env,
                                               cwd=self.workdir).start())
        self.pids = [w.command_pid() for w in self.workers]
        t0 = time.monotonic()
        rounds = asyncio.run(self._settle(settle_timeout))
        logger.info("floor: %d worker(s) settled on %s (%s) in %.1f s, %d warm-up round(s)", self.n_workers,
                    broker.url, self.broker_kind, time.monotonic() - t0, rounds)
        return self

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
        self.workers = []
        if self.reaper is not None:
            self.reaper.stop()
            self.reaper = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def throughput(self, n: int) -> ThroughputSample:
        """``n`` tasks written as fast as the producer allows, until every row is seen;
        ``extra`` has the workers' summed CPU time, its share per task and the broker's."""
        return asyncio.run(self._throughput(n))

    def latency(self, k: int) -> list[float]:
        """``k`` sequential round trips (ms): a task written, then its row read back."""
        return asyncio.run(self._latency(k))

    def _check_alive(self) -> None:
        for w in self.workers:
            w.check_alive()

    async def _settle(self, timeout: float) -> int:
        """Rounds of one task per partition until one round's rows come from every worker;
        how many rounds it took."""
        wanted = {f"w{i}" for i in range(self.n_workers)}
        deadline = time.monotonic() + timeout
        r = 0
        async with _Client(self.bootstrap) as client:
            while time.monotonic() < deadline:
                r += 1
                keys = {f"warm-{r}-{p}": p for p in range(PARTITIONS)}
                for key, p in keys.items():
                    await client.producer.send(TOPIC, key=key.encode(), value=_wire(key, 0), partition=p)
                rows = await client.rows(set(keys), deadline, self._check_alive)
                if {row["worker"] for row in rows.values()} == wanted:
                    return r
                await asyncio.sleep(0.2)  # between polls: the workers are still joining
        raise BenchError(f"the bare Faust workers did not all hold partitions within {timeout:g} s")

    async def _throughput(self, n: int) -> ThroughputSample:
        tag = uuid.uuid4().hex[:8]
        ids = [f"fl-{tag}-{i}" for i in range(n)]
        deadline = time.monotonic() + max(120.0, n / 20)
        async with _Client(self.bootstrap) as client:
            cpu0, bcpu0, t0 = self._cpu(), self._broker_cpu(), time.perf_counter()
            sent = [await client.producer.send(TOPIC, key=tid.encode(), value=_wire(tid, i))
                    for i, tid in enumerate(ids)]
            await asyncio.gather(*sent)
            t_sub = time.perf_counter()
            rows = await client.rows(set(ids), deadline, self._check_alive)
            t1, cpu1, bcpu1 = time.perf_counter(), self._cpu(), self._broker_cpu()
        for i, tid in enumerate(ids):
            if rows[tid].get("result") != 2 * i:
                raise BenchError(f"task {tid}: result {rows[tid].get('result')!r}, expected {2 * i}")
        cpu = cpu1 - cpu0
        return ThroughputSample(n, t_sub - t0, t1 - t0, extra={
            "last_done_s": t1 - t0, "worker_cpu_s": cpu, "cpu_ms_per_task": 1000 * cpu / n,
            "broker_cpu_ms_per_task": 1000 * (bcpu1 - bcpu0) / n})

    async def _latency(self, k: int) -> list[float]:
        tag = uuid.uuid4().hex[:8]
        out: list[float] = []
        async with _Client(self.bootstrap) as client:
            for i in range(k):
                tid = f"rt-{tag}-{i}"
                t0 = time.perf_counter()
                await client.producer.send_and_wait(TOPIC, key=tid.encode(), value=_wire(tid, i))
                rows = await client.rows({tid}, time.monotonic() + 30, self._check_alive)
                out.append((time.perf_counter() - t0) * 1000)
                if rows[tid].get("result") != 2 * i:
                    raise BenchError(f"task {tid}: result {rows[tid].get('result')!r}, expected {2 * i}")
        return out

    def _cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def _broker_cpu(self) -> float:
        assert self.broker is not None
        return sum(cpu_seconds(pid) for pid in self.broker.pids)

    @property
    def bootstrap(self) -> str:
        assert self.broker is not None
        return self.broker.bootstrap


class _Client:
    """The driver's producer (aiokafka defaults, as yadtq's Kafka path) and a reader of
    the changelog from its end at the time it starts."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10)

    async def __aenter__(self) -> "_Client":
        await self.producer.start()
        await self.consumer.start()
        tps = [TopicPartition(CHANGELOG, p) for p in range(PARTITIONS)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:  # resolve every position now: rows written after this are all read
            await self.consumer.position(tp)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.producer.stop()
        await self.consumer.stop()

    async def rows(self, keys: set[str], deadline: float, check: Callable[[], None]) -> dict[str, dict[str, Any]]:
        """Read the changelog until it has a row for each of ``keys``; those rows (the
        last for a key). ``check`` raises if a worker died."""
        found: dict[str, dict[str, Any]] = {}
        while len(found) < len(keys):
            if time.monotonic() > deadline:
                raise BenchError(f"only {len(found)} of {len(keys)} rows written in time")
            check()
            batches = await self.consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for rec in records:
                    key = rec.key.decode()
                    if key in keys:
                        found[key] = json.loads(rec.value)
        return found


async def _create_topics(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in (TOPIC, CHANGELOG)])
    finally:
        await admin.close()
