"""Where a busy worker's CPU goes: one worker, N ``add`` tasks written straight to Kafka
(or, with ``--via bulk``, submitted to it over HTTP, 1,000 a request; with ``--via http``,
one a request from 8 threads).

Starts a fresh broker (embedded, or Apache Kafka with ``--broker kafka``) and one
``yadtq worker``, writes the tasks with an aiokafka producer (the wire format any Kafka
client writes), records the worker with ``py-spy`` while it works through them, and
prints the functions that hold the most samples (own time and with callees), plus the
worker's tasks/s and CPU time per task.

    .venv/bin/python bench/profile_worker.py --tasks 8000 [--via bulk|http] [--broker kafka] [--raw out.txt]

Needs ``py-spy`` on PATH or in the virtualenv (``pip install py-spy``). Run by hand,
on a quiet machine; nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import AIOKafkaProducer

from bench.brokers import BROKERS, start_broker
from bench.procs import cpu_seconds
from bench.yadtq_target import _partition_tails, _wire
from tests.support.cluster import Cluster
from yadtq_app.client import Client

logger = logging.getLogger("bench.profile_worker")

#: Client threads submitting one task a request (``--via http``), as the bench's 8.
HTTP_THREADS = 8


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy not found: pip install py-spy")
    return found


async def _produce(bootstrap: str, topic: str, ids: list[str]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        sent = [await producer.send(topic, key=tid.encode(), value=_wire(tid, i)) for i, tid in enumerate(ids)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def _summarize(raw: Path, top: int) -> None:
    """Aggregate py-spy's collapsed stacks: own samples and inclusive samples per function."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  for f in stack.split(";") if f]
        if frames:
            own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    print(f"\n{total} samples")
    print(f"\n-- own time (top {top}) --")
    for f, n in own.most_common(top):
        print(f"{100 * n / total:5.1f}%  {f}")
    print(f"\n-- with callees (top {top}) --")
    for f, n in incl.most_common(top):
        print(f"{100 * n / total:5.1f}%  {f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=8000)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the worker (repeatable), e.g. YADTQ_PRODUCER_LINGER_MS=2")
    parser.add_argument("--gil", action="store_true", help="sample only the thread holding the GIL (py-spy --gil)")
    parser.add_argument("--blocking", action="store_true",
                        help="pause the worker for each sample: whole stacks (without it py-spy reads a running "
                             "process and some stacks come out torn: wrong callers), but a slower worker")
    parser.add_argument("--keep", action="store_true", help="keep the broker's and worker's directory (its logs)")
    parser.add_argument("--no-profile", action="store_true", help="only measure tasks/s and CPU per task")
    parser.add_argument("--broker", choices=BROKERS, default="embedded",
                        help="the embedded broker (Tansu) or Apache Kafka (one node)")
    parser.add_argument("--via", choices=("kafka", "bulk", "http"), default="kafka",
                        help="how the tasks arrive: the task topic, bulk POST /tasks, or one POST /tasks each")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    spy = None if args.no_profile else _py_spy()

    workdir = Path(tempfile.mkdtemp(prefix="yadtq-profile-"))
    broker = start_broker(args.broker, workdir / "broker", lifetime=1800)
    cluster = Cluster(broker.url, workdir, extra_env={"YADTQ_LOG_LEVEL": "warn", **broker.env,
                                                      **dict(e.split("=", 1) for e in args.env)})
    recorder = None
    try:
        [worker] = cluster.add(1)
        worker.wait_healthy(90)
        cluster.wait_settled(timeout=90)
        client = Client(worker.url)
        client.submit("add", 1, 1).result(timeout=30)  # warm
        ids = [f"prof-{i}" for i in range(args.tasks)]
        raw = args.raw or workdir / "profile.txt"
        if spy is not None:
            recorder = subprocess.Popen([spy, "record", "--pid", str(worker.pid), "--format", "raw", "--output",
                                         str(raw), "--rate", "200", "--threads",
                                         *([] if args.blocking else ["--nonblocking"]),
                                         *(["--gil"] if args.gil else [])],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # let py-spy attach
        bpids = broker.pids
        cpu0, bcpu0, t0 = cpu_seconds(worker.pid), sum(map(cpu_seconds, bpids)), time.perf_counter()
        if args.via == "kafka":
            asyncio.run(_produce(broker.bootstrap, cluster.task_topic, ids))
        elif args.via == "http":  # as the bench's single submissions: no id of ours, the worker names each
            with concurrent.futures.ThreadPoolExecutor(HTTP_THREADS) as pool:
                ids = list(pool.map(lambda i: client.submit("add", i, i).id, range(args.tasks)))
        else:  # as the bench's bulk submissions: no id of ours, the worker names each
            ids = [a["task-id"] for a in client.submit_many({"task": "add", "args": [i, i]} for i in range(args.tasks))]
        t_sub = time.perf_counter()
        # A partition's tasks run in order: its last one finishing means it is done.
        client.wait_all([ids[i] for i in _partition_tails(ids, cluster.partitions)],
                        timeout=max(120.0, args.tasks / 20))
        t1, cpu1, bcpu1 = time.perf_counter(), cpu_seconds(worker.pid), sum(map(cpu_seconds, bpids))
        if recorder is not None:
            recorder.send_signal(2)  # SIGINT: py-spy writes its output and exits
            recorder.wait(60)
            recorder = None
        n = args.tasks
        print(f"\n{n} tasks: written in {t_sub - t0:.2f} s, all finished after {t1 - t0:.2f} s "
              f"({n / (t1 - t0):.0f} tasks/s); worker CPU {cpu1 - cpu0:.2f} s = "
              f"{1000 * (cpu1 - cpu0) / n:.2f} ms per task; broker CPU {1000 * (bcpu1 - bcpu0) / n:.2f} ms per task")
        if spy is not None:
            _summarize(raw, args.top)
    finally:
        if recorder is not None:
            recorder.kill()
        cluster.stop()
        broker.stop()
        if args.keep:
            logger.info("kept %s", workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
