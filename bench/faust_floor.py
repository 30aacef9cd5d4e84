"""The floor under yadtq's speed: a bare Faust worker doing the least a task queue must.

One Faust agent (concurrency 1) reads ``add`` task messages in yadtq's wire format,
decodes the JSON, adds the two numbers and writes one status row (raw JSON bytes) into
a RocksDB table, whose changelog record is what the driver waits for. No status
checks, no time limits, no threads, no leases, no HTTP: what Faust, aiokafka and the
broker cost per message on this machine, with the embedded broker and yadtq's consumer
settings (its broker profile's transport: the same fetch wait and end-offset remedy).

    .venv/bin/python bench/faust_floor.py [--tasks 8000]

Prints tasks/s and the worker's CPU per task, comparable with
``bench/profile_worker.py`` (one yadtq worker, the same tasks written the same way).
Run by hand, on a quiet machine; nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

from bench.procs import BoundedProcess  # noqa: E402
from bench.profile_worker import _cpu_seconds  # noqa: E402
from tests.support.cluster import free_port  # noqa: E402
from yadtq_app.broker import EmbeddedBroker  # noqa: E402

logger = logging.getLogger("bench.faust_floor")

PARTITIONS = 8
TOPIC = "floor-tasks"
CHANGELOG = "floor-floor-status-changelog"

#: The bare worker: a Faust app with yadtq's embedded-broker transport and nothing else.
APP = textwrap.dedent('''
    import json, os
    import faust
    from yadtq_app.kafka.profiles import EmbeddedTransport

    class App(faust.App):
        def _new_transport(self):
            return EmbeddedTransport(self.conf.broker_consumer, self)

    app = App("floor", broker=os.environ["FLOOR_BROKER"], store="rocksdb://", datadir=os.environ["FLOOR_DATA"],
              topic_partitions=PARTITIONS, broker_session_timeout=2, broker_heartbeat_interval=0.5,
              web_port=int(os.environ["FLOOR_WEB_PORT"]), web_host="127.0.0.1",
              consumer_auto_offset_reset="earliest", table_standby_replicas=0)
    tasks = app.topic("TOPIC", key_type=bytes, value_type=bytes, value_serializer="raw", partitions=PARTITIONS)
    status = app.Table("floor-status", key_type=bytes, value_type=bytes, partitions=PARTITIONS)

    @app.agent(tasks)
    async def run(stream):
        async for event in stream.events():
            task = json.loads(event.value)
            result = task["args"][0] + task["args"][1]
            status[event.key] = json.dumps({"task-id": task["task-id"], "status": "success",
                                            "result": result}).encode()

    if __name__ == "__main__":
        app.main()
''').replace("PARTITIONS", str(PARTITIONS)).replace("TOPIC", TOPIC)


def _wire(tid: str, i: int) -> bytes:
    return json.dumps({"task-id": tid, "task": "add", "args": [i, i], "kwargs": {}}).encode()


async def _drive(bootstrap: str, worker_pid: int, n: int) -> tuple[float, float]:
    """Write ``n`` tasks, wait for ``n`` changelog records; (seconds, worker CPU seconds)."""
    consumer = AIOKafkaConsumer(CHANGELOG, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                fetch_max_wait_ms=10)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await consumer.start()
    await producer.start()
    try:
        await producer.send_and_wait(TOPIC, key=b"warm", value=_wire("warm", 0))
        await asyncio.wait_for(consumer.getone(), 120)  # the worker has joined and works
        await asyncio.sleep(1.0)
        cpu0, t0 = _cpu_seconds(worker_pid), time.perf_counter()
        sent = [await producer.send(TOPIC, key=f"t{i}".encode(), value=_wire(f"t{i}", i)) for i in range(n)]
        await asyncio.gather(*sent)
        seen = 0
        deadline = time.monotonic() + max(120.0, n / 20)
        while seen < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {seen} of {n} rows written in time")
            records = await consumer.getmany(timeout_ms=1000)
            seen += sum(len(batch) for batch in records.values())
        return time.perf_counter() - t0, _cpu_seconds(worker_pid) - cpu0
    finally:
        await producer.stop()
        await consumer.stop()


async def _create_topics(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in (TOPIC, CHANGELOG)])
    finally:
        await admin.close()


def _child_pid(bounded: BoundedProcess, timeout: float = 10.0) -> int:
    """The worker's own pid: BoundedProcess runs it under ``timeout``, whose child it is."""
    assert bounded.proc is not None
    pid = bounded.proc.pid
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.05)
    raise SystemExit("the bare Faust worker did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=8000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    workdir = Path(tempfile.mkdtemp(prefix="yadtq-floor-"))
    (workdir / "floor_app.py").write_text(APP)
    broker = EmbeddedBroker("127.0.0.1", free_port(), log_path=str(workdir / "broker.log")).start()
    worker = None
    try:
        asyncio.run(_create_topics(broker.bootstrap))
        env = dict(os.environ, FLOOR_BROKER=broker.url, FLOOR_DATA=str(workdir / "data"),
                   FLOOR_WEB_PORT=str(free_port()), PYTHONPATH=os.pathsep.join([str(workdir), str(ROOT)]))
        worker = BoundedProcess("bare Faust worker", [sys.executable, str(workdir / "floor_app.py"), "worker",
                                                      "-l", "warn", "--without-web"],
                                lifetime=max(300.0, args.tasks / 10), log_path=workdir / "worker.log", env=env,
                                cwd=workdir).start()
        seconds, cpu = asyncio.run(_drive(broker.bootstrap, _child_pid(worker), args.tasks))
        n = args.tasks
        print(f"\nbare Faust: {n} tasks in {seconds:.2f} s ({n / seconds:.0f} tasks/s); worker CPU {cpu:.2f} s = "
              f"{1000 * cpu / n:.3f} ms per task")
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
