"""Cost at rest: the CPU an idle ``yadtq worker`` and its broker use.

Starts a fresh broker (embedded by default; ``--broker kafka``: one local Apache Kafka
node with the bench's settings, ``make kafka-jars``) and one ``yadtq worker`` (as
``bench/profile_worker.py`` does, through ``tests/support/cluster.py``; on Kafka with the
``kafka`` profile unchanged), waits until the worker is healthy and settled (alive in
``/workers``, holding every partition), then reads the worker's and the broker's CPU
time (user + system, ``/proc/PID/stat``) over ``--seconds`` with no task submitted, and
prints each as a percentage of one core, per ``--slice`` and over the whole interval.

    .venv/bin/python bench/idle.py [--broker kafka] [--seconds 60] [--slice 10]

Run by hand, on a quiet machine; nothing here is a test.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.apache_kafka import kafka_problem  # noqa: E402
from bench.brokers import BROKERS, start_broker  # noqa: E402
from bench.common import Reaper  # noqa: E402
from bench.procs import cpu_seconds  # noqa: E402
from tests.support.cluster import Cluster  # noqa: E402

logger = logging.getLogger("bench.idle")


def sample(pids: dict[str, list[int]], seconds: float, slice_s: float) -> dict[str, float]:
    """CPU of each group of ``pids`` over ``seconds``, as % of one core; each slice printed."""
    def now() -> dict[str, float]:
        return {name: sum(cpu_seconds(p) for p in group) for name, group in pids.items()}

    start, t_start = now(), time.monotonic()
    last, t_last = start, t_start
    end = t_start + seconds
    while t_last < end:
        time.sleep(min(slice_s, end - t_last))  # the sampling interval: measuring, not waiting
        cur, t_cur = now(), time.monotonic()
        print(f"  {t_cur - t_start:5.1f} s: " + ", ".join(
            f"{name} {100 * (cur[name] - last[name]) / (t_cur - t_last):.2f}%" for name in pids), flush=True)
        last, t_last = cur, t_cur
    return {name: 100 * (last[name] - start[name]) / (t_last - t_start) for name in pids}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=BROKERS, default="embedded")
    parser.add_argument("--seconds", type=float, default=60.0, help="measuring interval (default 60)")
    parser.add_argument("--slice", type=float, default=10.0, help="print the rate every so many seconds (default 10)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="work in DIR and keep it (logs)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("aiokafka", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.broker == "kafka" and kafka_problem():
        raise SystemExit(f"cannot run Apache Kafka: {kafka_problem()}")
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="yadtq-idle-"))
    lifetime = args.seconds + 300
    broker = start_broker(args.broker, workdir, lifetime=lifetime)
    cluster = Cluster(broker.url, workdir, extra_env={"YADTQ_LOG_LEVEL": "warn", **broker.env})
    reaper = None
    try:
        [worker] = cluster.add(1)
        reaper = Reaper("idle worker and broker", broker.pids + [worker.pid], lifetime).start()
        worker.wait_healthy(90)
        cluster.wait_settled(timeout=90)
        logger.info("worker pid %d settled on %s (%s); measuring %g s", worker.pid, broker.url, args.broker,
                    args.seconds)
        rates = sample({"worker": [worker.pid], "broker": broker.pids}, args.seconds, args.slice)
        print(f"\nidle over {args.seconds:g} s on {args.broker}: worker {rates['worker']:.2f}% of one core, "
              f"broker {rates['broker']:.2f}%")
    finally:
        if reaper is not None:
            reaper.stop()
        cluster.stop()
        broker.stop()
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
