"""The floor under yadtq's speed: N bare Faust workers doing the least a task queue must.

Per run and worker count: a fresh broker (embedded, or ``--broker kafka``: one local
Apache Kafka node, ``make kafka-jars``), N ``bench/floor_app.py`` workers in one consumer
group with yadtq's broker-profile transport and timeouts, settled (every worker holds
partitions); then ``--tasks`` ``add`` tasks written to the task topic as yadtq's Kafka
path writes them, until every status row is in the table's changelog
(``bench/floor_target.py``). Worker counts alternate within a run (``--workers 1,2
--runs 2``: 1, 2, 1, 2).

    .venv/bin/python bench/faust_floor.py [--workers 1,2] [--runs 2] [--tasks 8000] [--broker kafka]

Prints tasks/s and the workers' summed CPU per task, comparable with
``bench/profile_worker.py`` (one yadtq worker, the same tasks written the same way);
``bench/compare.py`` measures the floor beside yadtq ("Faust floor" rows). Run by hand,
on a quiet machine; nothing here is a test.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.apache_kafka import kafka_problem  # noqa: E402
from bench.brokers import BROKERS  # noqa: E402
from bench.common import ThroughputSample  # noqa: E402
from bench.floor_target import FloorTarget  # noqa: E402

logger = logging.getLogger("bench.faust_floor")


def measure(n_workers: int, tasks: int, broker: str, workdir: Path) -> ThroughputSample:
    """One fresh floor of ``n_workers`` on a fresh ``broker``: ``tasks`` tasks' throughput."""
    target = FloorTarget(n_workers, workdir, lifetime=max(300.0, tasks / 10 + 120), broker=broker)
    try:
        target.start()
        return target.throughput(tasks)
    finally:
        target.stop()


def _line(n_workers: int, broker: str, s: ThroughputSample) -> str:
    return (f"bare Faust, {n_workers} worker(s) on {broker}: {s.n} tasks in {s.total_s:.2f} s "
            f"({s.tasks_per_s:.0f} tasks/s; written in {s.submit_s:.2f} s); workers' CPU "
            f"{s.extra['worker_cpu_s']:.2f} s = {s.extra['cpu_ms_per_task']:.3f} ms per task; broker "
            f"{s.extra['broker_cpu_ms_per_task']:.3f} ms per task")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1", help="worker count, or counts to alternate: 1,2 (default 1)")
    parser.add_argument("--tasks", type=int, default=8000)
    parser.add_argument("--runs", type=int, default=1, help="runs of every worker count (default 1)")
    parser.add_argument("--broker", choices=BROKERS, default="embedded")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="work in DIR and keep it (logs)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("aiokafka", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    counts = [int(w) for w in args.workers.split(",") if w]
    if args.broker == "kafka" and kafka_problem():
        raise SystemExit(f"cannot run Apache Kafka: {kafka_problem()}")
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="yadtq-floor-"))
    results: dict[int, list[ThroughputSample]] = {n: [] for n in counts}
    try:
        for run in range(args.runs):
            for n in counts:
                sample = measure(n, args.tasks, args.broker, workdir / f"r{run}-w{n}")
                results[n].append(sample)
                print(f"run {run + 1}: {_line(n, args.broker, sample)}", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.runs > 1:
        for n, samples in results.items():
            rates = [s.tasks_per_s for s in samples]
            cpu = [s.extra["cpu_ms_per_task"] for s in samples]
            print(f"{n} worker(s) on {args.broker}: median {statistics.median(rates):.0f} tasks/s "
                  f"({min(rates):.0f}–{max(rates):.0f}), {statistics.median(cpu):.3f} ms CPU per task")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
