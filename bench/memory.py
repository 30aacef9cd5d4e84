"""Worker memory under sustained load: RSS of one worker while it runs 100,000 tasks.

A fresh embedded broker and one real ``yadtq worker`` (``bench/yadtq_target.py``), with
full status tracking. No-op ``add`` tasks are written onto the task topic by a Kafka
producer in rounds (10,000 by default), every status is confirmed through the HTTP API
after each round, and the worker's resident set size is read from ``/proc`` before the
first round and after each one. Prints a table and what grew.

    .venv/bin/python bench/memory.py                     # 100,000 tasks, 10 rounds
    .venv/bin/python bench/memory.py --tasks 20000       # quicker

What a worker keeps per task, and its bounds: the status row (RocksDB: on disk, with a
memtable and block cache of bounded size; rows leave after ``YADTQ_RESULT_TTL``), the
last 100,000 finished ids in memory (``RecentlyFinished``, ahead of the table), and
nothing else once the task is done.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.yadtq_target import YadtqTarget  # noqa: E402


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (``VmRSS`` in ``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--round", type=int, default=10_000, help="tasks per round (RSS is read after each)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rounds = max(1, args.tasks // args.round)
    with tempfile.TemporaryDirectory() as d:
        target = YadtqTarget(1, Path(d), lifetime=60 + rounds * 300.0).start()
        try:
            assert target.cluster is not None and target.broker is not None
            worker = target.cluster.workers[0]
            broker_pid = target.broker.pids[0]
            target.warm_up()
            rows = [(0, rss_mb(worker.pid), rss_mb(broker_pid), 0.0)]
            done = 0
            for _ in range(rounds):
                sample = target.throughput(args.round, "kafka")
                done += args.round
                rows.append((done, rss_mb(worker.pid), rss_mb(broker_pid), sample.tasks_per_s))
                print(f"{done:>7} tasks  worker RSS {rows[-1][1]:7.1f} MiB  broker RSS {rows[-1][2]:7.1f} MiB  "
                      f"{sample.tasks_per_s:6.0f} tasks/s", flush=True)
        finally:
            target.stop()
    print(f"\nmachine: {platform.node()} {platform.machine()}, Python {platform.python_version()}, "
          f"date {time.strftime('%Y-%m-%d')}")
    print("| tasks done | worker RSS (MiB) | broker RSS (MiB) | round tasks/s |")
    print("|---:|---:|---:|---:|")
    for n, w, b, tps in rows:
        print(f"| {n:,} | {w:.1f} | {b:.1f} | {tps:.0f} |" if n else f"| 0 (after warm-up) | {w:.1f} | {b:.1f} | |")
    first_half = rows[len(rows) // 2][1] - rows[1][1]
    second_half = rows[-1][1] - rows[len(rows) // 2][1]
    print(f"\nworker RSS: {rows[0][1]:.1f} MiB idle, {rows[-1][1]:.1f} MiB after {done:,} tasks; growth "
          f"{first_half:+.1f} MiB over the first half of the rounds, {second_half:+.1f} MiB over the second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
