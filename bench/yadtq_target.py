"""yadtq under measurement: a fresh broker and N real ``yadtq worker`` processes.

The broker is the embedded one (``yadtq_app.broker.EmbeddedBroker``) or Apache Kafka,
one KRaft node (``yadtq_app.kafka_local.LocalKafka`` with the bench's settings,
``bench/apache_kafka.py``; the workers run the ``kafka`` profile), from
``bench/brokers.py``. Broker and workers start exactly as in the tests and
``bench/failover.py`` (``tests/support/cluster.Cluster``). Tasks are
submitted over HTTP (``POST /tasks``, round-robin over the workers) or written by a
Kafka producer (aiokafka) straight onto the task topic in the wire format, keyed by
id; every status is read back through ``GET /tasks/{id}``, the real status API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import time
import uuid
from pathlib import Path
from typing import Any, Optional

import aiohttp
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from bench.brokers import BROKERS, BenchBroker, start_broker
from bench.common import CONCURRENCY, Reaper, ThroughputSample, bounded_gather
from bench.procs import BenchError
from tests.support.cluster import Cluster

__all__ = ["YadtqTarget", "VIAS", "BROKERS"]

logger = logging.getLogger(__name__)

#: Submission paths: one task per HTTP request, bulk HTTP requests (1,000 tasks each),
#: and records written straight to the task topic.
VIAS = ("http", "bulk", "kafka")
TERMINAL = ("success", "failed", "cancelled")


class YadtqTarget:
    """One cluster of ``workers`` workers on its own broker (a fresh, empty one): ``broker``
    is ``"embedded"`` or ``"kafka"``; ``extra_env`` goes to the workers on top of the rest."""

    def __init__(self, workers: int, workdir: Path, *, lifetime: float, broker: str = "embedded",
                 extra_env: Optional[dict[str, str]] = None) -> None:
        if broker not in BROKERS:
            raise ValueError(f"broker {broker!r} is not one of {', '.join(BROKERS)}")
        self.n_workers = workers
        self.workdir = workdir
        self.lifetime = lifetime
        self.broker_kind = broker
        self.extra_env = dict(extra_env or {})
        self.broker: Optional[BenchBroker] = None
        self.cluster: Optional[Cluster] = None
        self.reaper: Optional[Reaper] = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> "YadtqTarget":
        env = {"YADTQ_LOG_LEVEL": "warn"}  # workers log warnings only, as the peers' workers do
        broker = self.broker = start_broker(self.broker_kind, self.workdir, lifetime=self.lifetime)
        env.update(broker.env)
        env.update(self.extra_env)
        self.cluster = Cluster(broker.url, self.workdir, extra_env=env)
        self.cluster.add(self.n_workers)
        self.reaper = Reaper(f"yadtq x{self.n_workers} on {self.broker_kind}",
                             broker.pids + [w.pid for w in self.cluster.workers], self.lifetime).start()
        for w in self.cluster.workers:
            w.wait_healthy(90)
        self.cluster.wait_settled(timeout=90)
        logger.info("yadtq: %d worker(s) settled on %s (%s)", self.n_workers, broker.url, self.broker_kind)
        return self

    def stop(self) -> None:
        if self.reaper is not None:
            self.reaper.stop()
            self.reaper = None
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    @property
    def urls(self) -> list[str]:
        assert self.cluster is not None
        return [w.url for w in self.cluster.running()]

    @property
    def bootstrap(self) -> str:
        assert self.broker is not None
        return self.broker.bootstrap

    @property
    def partitions(self) -> int:
        assert self.cluster is not None
        return self.cluster.partitions

    @property
    def topic(self) -> str:
        assert self.cluster is not None
        return self.cluster.task_topic

    # -- measurements ------------------------------------------------------------------------------

    def warm_up(self, n: int = 20) -> None:
        for via in VIAS:
            self.throughput(n, via)

    def throughput(self, n: int, via: str) -> ThroughputSample:
        return asyncio.run(self._throughput(n, via))

    def latency(self, k: int, via: str, poll: float = 0.001) -> list[float]:
        """``k`` sequential round trips (ms); where their time went is logged (:func:`_log_phases`)."""
        samples, phases = asyncio.run(self._latency(k, via, poll))
        _log_phases(f"{via} (on {self.broker_kind}, {self.n_workers}w)", phases)
        return samples

    async def _throughput(self, n: int, via: str) -> ThroughputSample:
        urls = self.urls
        tag = uuid.uuid4().hex[:8]
        ids = [f"tp-{tag}-{i}" for i in range(n)]  # over HTTP: the ids the workers give
        deadline = time.monotonic() + max(120.0, n / 20)
        async with _session() as session, _producer(self.bootstrap if via == "kafka" else None) as producer:
            t0 = time.perf_counter()
            groups = [range(n)]  # runs of ids whose tasks reach each partition in order
            if via == "http":
                ids = await bounded_gather(_post(session, urls[i % len(urls)], i) for i in range(n))
            elif via == "bulk":
                groups = [range(i, min(i + BATCH, n)) for i in range(0, n, BATCH)]
                ids = [t for chunk in await bounded_gather(_post_bulk(session, urls[j % len(urls)], c)
                                                           for j, c in enumerate(groups)) for t in chunk]
            else:
                assert producer is not None
                sent = [await producer.send(self.topic, key=tid.encode(), value=_wire(tid, i))
                        for i, tid in enumerate(ids)]
                await asyncio.gather(*sent)
            t_sub = time.perf_counter()
            # A partition's tasks run in order, so its last task is (nearly) the last to
            # finish: wait on those alone, with a long poll each (GET /tasks/{id}?wait=5:
            # its owner answers when it is final, as a client waits), then read every
            # status once, in batches (POST /tasks/status), asking again only about those
            # not finished. Polling all 10,000 from the start would mostly ask about queued
            # tasks and take CPU from the workers; so did polling the tails every 5 ms.
            # Bulk requests are in flight together, so a worker may take a later chunk
            # before an earlier one: each chunk's last task of a partition is a tail
            # (waiting on the last by index alone began the batch reads below while the
            # worker still ran other chunks, and they took its CPU).
            tails = [g.start + i for g in groups for i in _partition_tails(ids[g.start:g.stop], self.partitions)]
            expected = {tid: 2 * i for i, tid in enumerate(ids)}
            await asyncio.gather(*(_wait(session, urls[k % len(urls)], ids[i], expected[ids[i]], 0.005, deadline)
                                   for k, i in enumerate(tails)))
            t_last = time.perf_counter()
            await _wait_batch(session, urls, ids, expected, 0.01, deadline)
            t1 = time.perf_counter()
        return ThroughputSample(n, t_sub - t0, t1 - t0, extra={"last_done_s": t_last - t0})

    async def _latency(self, k: int, via: str, poll: float) -> tuple[list[float], list[dict[str, float]]]:
        url = self.urls[0]
        tag = uuid.uuid4().hex[:8]
        out: list[float] = []
        phases: list[dict[str, float]] = []
        async with _session() as session, _producer(self.bootstrap if via == "kafka" else None) as producer:
            for i in range(k):
                tid = f"rt-{tag}-{i}"
                deadline = time.monotonic() + 30
                t0, wall0 = time.perf_counter(), time.time()
                if via == "http":
                    tid = await _post(session, url, i)
                elif via == "bulk":
                    [tid] = await _post_bulk(session, url, range(i, i + 1))
                else:
                    assert producer is not None
                    await producer.send_and_wait(self.topic, key=tid.encode(), value=_wire(tid, i))
                wall_acked = time.time()
                info = await _wait(session, url, tid, 2 * i, poll, deadline)
                out.append((time.perf_counter() - t0) * 1000)
                if info.get("started_at") and info.get("finished_at"):
                    phases.append({"acked": wall_acked - wall0, "to_start": info["started_at"] - wall0,
                                   "run": info["finished_at"] - info["started_at"],
                                   "to_seen": time.time() - info["finished_at"]})
        return out, phases


def _log_phases(what: str, phases: list[dict[str, float]]) -> None:
    """Median of each part of a round trip, from the status row's timestamps (same machine clock)."""
    if not phases:
        return
    med = {k: statistics.median(p[k] for p in phases) * 1000 for k in phases[0]}
    logger.info("yadtq %s round trip, medians: submit acknowledged %.1f ms; submit → started %.1f ms; "
                "started → finished %.1f ms; finished → seen by the client %.1f ms", what, med["acked"],
                med["to_start"], med["run"], med["to_seen"])


def _partition_tails(ids: list[str], partitions: int) -> list[int]:
    """Index of the last id per partition, by Kafka's default partitioner (murmur2 of the key)."""
    last: dict[int, int] = {}
    for i, tid in enumerate(ids):
        last[(murmur2(tid.encode()) & 0x7FFFFFFF) % partitions] = i
    return sorted(last.values())


def _wire(tid: str, i: int) -> bytes:
    """The task-topic wire format (yadtq_app/wire.py), as any Kafka client writes it."""
    return json.dumps({"task-id": tid, "task": "add", "args": [i, i], "kwargs": {}}).encode()


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY),
                                 timeout=aiohttp.ClientTimeout(total=30))


class _producer:
    """An aiokafka producer with its defaults (acks=1, linger 0), or nothing."""

    def __init__(self, bootstrap: Optional[str]) -> None:
        self.bootstrap = bootstrap
        self.producer: Optional[AIOKafkaProducer] = None

    async def __aenter__(self) -> Optional[AIOKafkaProducer]:
        if self.bootstrap is None:
            return None
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await self.producer.start()
        return self.producer

    async def __aexit__(self, *exc: Any) -> None:
        if self.producer is not None:
            await self.producer.stop()


async def _post(session: aiohttp.ClientSession, url: str, i: int) -> str:
    """Submit ``add(i, i)`` as ``Client.submit`` does (no id of ours: the worker names the
    task, and has no duplicate to look for); the task's id."""
    body = {"task": "add", "args": [i, i]}
    async with session.post(f"{url}/tasks", json=body) as resp:
        if resp.status >= 300:  # 202 accepted
            raise BenchError(f"POST {url}/tasks: HTTP {resp.status}: {await resp.text()}")
        return str((await resp.json())["task-id"])


async def _post_bulk(session: aiohttp.ClientSession, url: str, numbers: range) -> list[str]:
    """Submit ``add(i, i)`` for each of ``numbers`` in one bulk ``POST /tasks``; their ids."""
    body = [{"task": "add", "args": [i, i]} for i in numbers]
    async with session.post(f"{url}/tasks", json=body) as resp:
        if resp.status != 200:
            raise BenchError(f"POST {url}/tasks (bulk): HTTP {resp.status}: {await resp.text()}")
        answers = (await resp.json())["tasks"]
    refused = [a for a in answers if "error" in a]
    if refused:
        raise BenchError(f"POST {url}/tasks (bulk): {len(refused)} refused, e.g. {refused[0]}")
    return [str(a["task-id"]) for a in answers]


#: Ids per ``POST /tasks/status`` (the server's limit).
BATCH = 1000


async def _wait_batch(session: aiohttp.ClientSession, urls: list[str], ids: list[str], expected: dict[str, Any],
                      poll: float, deadline: float) -> None:
    """Read the statuses of ``ids`` in batches (``POST /tasks/status``, round-robin over the
    workers, several batches in flight) until every one is final; each must be
    ``success`` with its ``expected`` result."""
    pending = list(ids)
    while pending:
        chunks = [pending[k:k + BATCH] for k in range(0, len(pending), BATCH)]
        answers = await bounded_gather((_statuses(session, urls[k % len(urls)], chunk)
                                        for k, chunk in enumerate(chunks)), limit=4)
        still: list[str] = []
        for chunk, rows in zip(chunks, answers):
            for tid in chunk:
                row = rows.get(tid)
                if row is None or row["status"] not in TERMINAL:
                    still.append(tid)  # not recorded yet, not finished, or its owner rebalancing
                elif row["status"] != "success" or row["result"] != expected[tid]:
                    raise BenchError(f"task {tid}: {row['status']} {row.get('result')!r} {row.get('error')!r}, "
                                     f"expected success {expected[tid]!r}")
        pending = still
        if pending:
            if time.monotonic() > deadline:
                raise BenchError(f"{len(pending)} tasks not finished in time (e.g. {pending[0]})")
            await asyncio.sleep(poll)


async def _statuses(session: aiohttp.ClientSession, url: str, ids: list[str]) -> dict[str, Any]:
    async with session.post(f"{url}/tasks/status", json={"ids": ids}) as resp:
        if resp.status == 503:
            return {}
        if resp.status != 200:
            raise BenchError(f"POST {url}/tasks/status: HTTP {resp.status}: {await resp.text()}")
        return dict((await resp.json())["tasks"])


async def _wait(session: aiohttp.ClientSession, url: str, tid: str, expected: Any, poll: float,
                deadline: float) -> dict[str, Any]:
    """``GET /tasks/{tid}?wait=5`` (the long poll: the owner answers when the task is
    final) until it is final, pausing ``poll`` s after an answer that was not; it must be
    ``success``/``expected``. Returns the final status row."""
    while True:
        async with session.get(f"{url}/tasks/{tid}", params={"wait": "5"}) as resp:
            if resp.status == 200:
                info = await resp.json()
                if info["status"] in TERMINAL:
                    if info["status"] != "success" or info["result"] != expected:
                        raise BenchError(f"task {tid}: {info['status']} {info.get('result')!r} "
                                         f"{info.get('error')!r}, expected success {expected!r}")
                    return dict(info)
            elif resp.status not in (404, 503):  # 404: not folded in yet; 503: rebalancing
                raise BenchError(f"GET {url}/tasks/{tid}: HTTP {resp.status}: {await resp.text()}")
        if time.monotonic() > deadline:
            raise BenchError(f"task {tid} not finished in time (last answer HTTP {resp.status})")
        await asyncio.sleep(poll)
