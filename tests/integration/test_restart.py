"""Statuses survive a worker restart, with its data dir kept or wiped.

A restart moves partitions: the surviving worker recovers the stopped one's rows
from the changelog, then the restarted worker recovers them back. On the embedded
broker that recovery trusts end offsets that are wrong for batched writes (see
``yadtq_app.kafka.end_offsets``); the last test shows what happens without the remedy.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP

from tests.integration.test_core import submit_mixed, wait_all_finished
from tests.support.wait import wait_for
from yadtq_app import Client
from yadtq_app.kafka.end_offsets import true_end_offsets

pytestmark = pytest.mark.integration

N_TASKS = 100
N_SLEEPERS = 64
#: Many tasks finish at once, so status rows reach the changelog in multi-record
#: batches, which is what the embedded broker's end offsets get wrong.
ENV = {"YADTQ_CONCURRENCY": "32", "YADTQ_PRODUCER_LINGER_MS": "20"}


def load(cluster: Any) -> dict[str, dict[str, Any]]:
    """Run a mixed load plus a wave of tasks finishing together; their final rows."""
    expected = submit_mixed(cluster, N_TASKS)
    c = Client(cluster.workers[0].url)
    finish_at = time.time() + 2.0
    sleepers = [c.submit("tests.sleep_until", finish_at).id for _ in range(N_SLEEPERS)]
    failing = [c.submit("divide", 1, 0).id for _ in range(5)]
    before = wait_all_finished(cluster, list(expected) + sleepers + failing)
    assert all(before[t]["status"] == "success" for t in list(expected) + sleepers)
    assert all(before[t]["status"] == "failed" for t in failing)
    return before


def answers_from_every_worker(cluster: Any, ids: list[str]) -> dict[str, list[Any]]:
    """id → what each running worker answers (status code or body)."""
    out: dict[str, list[Any]] = {}
    with httpx.Client(timeout=10) as http:
        for tid in ids:
            row = []
            for w in cluster.running():
                r = http.get(f"{w.url}/tasks/{tid}")
                row.append(r.json() if r.status_code == 200 else r.status_code)
            out[tid] = row
    return out


def restart(cluster: Any, *, wipe: bool) -> None:
    w = cluster.workers[1]
    w.stop()
    # The survivor takes every partition and recovers the stopped worker's rows.
    cluster.wait_settled(timeout=60)
    if wipe:
        w.wipe()
    w.start()
    w.wait_healthy(60)
    cluster.wait_settled(timeout=60)


@pytest.mark.parametrize("wipe", [False, True], ids=["same-data-dir", "wiped-data-dir"])
def test_every_status_is_answered_after_a_restart(cluster_factory: Any, wipe: bool) -> None:
    cluster = cluster_factory(extra_env=ENV).start(2)
    before = load(cluster)

    restart(cluster, wipe=wipe)

    def all_correct() -> bool:
        after = answers_from_every_worker(cluster, list(before))
        wrong = {t: a for t, a in after.items() if any(x != before[t] for x in a)}
        return not wrong

    wait_for(all_correct, timeout=30, interval=0.5, message="every status to be answered as before")
    # and the restarted worker works
    assert Client(cluster.workers[1].url).submit("add", 20, 22).result(timeout=30) == 42


def listed_short(cluster: Any) -> set[int]:
    """Status-changelog partitions whose listed end offset is short of the true one."""
    bootstrap = cluster.env["YADTQ_BROKER_URL"].split("://", 1)[-1]
    topic = f"{cluster.app_id}-task-status-changelog"

    async def read() -> set[int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(cluster.partitions)]
            listed = {TP(tp.topic, tp.partition): off for tp, off in (await consumer.end_offsets(tps)).items()}
        finally:
            await consumer.stop()
        true = await true_end_offsets(bootstrap, listed)
        return {tp.partition for tp, off in listed.items() if true[tp] > off}

    return asyncio.run(read())


@pytest.mark.embedded_only
def test_without_the_end_offset_remedy_rows_go_missing(cluster_factory: Any) -> None:
    """The defect is real: with the remedy off, the survivor's recovery crashes with
    ``ConsistencyError`` (its store is ahead of the wrong end offset) or answers rows
    missing or older than they are."""
    cluster = cluster_factory(extra_env={**ENV, "YADTQ_FIX_END_OFFSETS": "0"}).start(2)
    before = load(cluster)
    # The defect needs a partition the survivor recovers to end in a multi-record batch;
    # whether the last write of a wave was batched is timing, so write waves until one is.
    for _ in range(5):
        short = listed_short(cluster)
        held = {w["id"]: set(w["partitions"]) for w in cluster.workers_view()}
        stopped = next((w for w in cluster.workers if held.get(w.worker_id, set()) & short), None)
        if stopped is not None:
            break
        before.update(load(cluster))
    assert stopped is not None, "no status-changelog partition ended in a batch the broker lists short"
    survivor = next(w for w in cluster.workers if w is not stopped)
    stopped.stop()
    stopped.wipe()

    def defect_seen() -> str:
        if "ConsistencyError" in survivor.log_text():
            return "crash"
        with httpx.Client(timeout=5) as http:
            answers = [http.get(f"{survivor.url}/tasks/{t}") for t in before]
        if any(r.status_code == 404 for r in answers):
            return "missing"
        if any(r.status_code == 200 and r.json() != before[t] for r, t in zip(answers, before)):
            return "older"
        return ""

    seen = wait_for(defect_seen, timeout=45, interval=0.5, message="the end-offset defect to show")
    assert seen in ("crash", "missing", "older")
