"""A worker cut off from the broker by a network fault while it runs tasks.

It runs in a network namespace of its own, joined to this host by a veth pair; taking
the link down cuts it off from the broker and from the other workers at once. Its
partitions must move, its in-flight tasks run again elsewhere and nothing else, its
late outcomes (sent when the link returns) must not overwrite the newer rows, and it
must rejoin the group.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests.integration.test_core import wait_all_finished
from tests.support.cluster import Cluster, free_port
from tests.support.ledger import Ledger, check, submit_ledgered
from tests.support.netns import TestHost, netns_available
from tests.support.wait import wait_for
from yadtq_app import Client
from yadtq_app.broker import EmbeddedBroker

pytestmark = [pytest.mark.integration, pytest.mark.skipif(netns_available() is not None,
                                                          reason=str(netns_available()))]


#: Slack for the worker's own timing (a heartbeat's round trip, the loop's latency), s.
NOTICE_MARGIN = 0.5


@pytest.fixture
def test_host() -> Iterator[TestHost]:
    host = TestHost().create()
    try:
        yield host
    finally:
        host.delete()


def test_a_worker_cut_off_from_the_broker_hands_over_and_rejoins(test_host: TestHost, tmp_path: Path) -> None:
    broker = EmbeddedBroker(test_host.gateway, free_port(), log_path=str(tmp_path / "broker.log")).start()
    ledger = Ledger(tmp_path / "ledger.jsonl")
    cluster = Cluster(broker.url, tmp_path / "cluster", partitions=6,
                      extra_env={"YADTQ_TEST_LEDGER": str(ledger.path), "YADTQ_BROKER_PROFILE": "embedded"})
    try:
        cluster.add(2, web_host=test_host.gateway)
        [cut] = cluster.add(1, web_host=test_host.address, wrap=test_host.wrap)
        for w in cluster.workers:
            w.wait_healthy(90)
        cluster.wait_settled(timeout=90)
        ids = submit_ledgered(cluster, 30)
        wait_for(lambda: len(ledger.read().running(cut.worker_id)) >= 2, timeout=30, interval=0.05,
                 message="the worker to be cut off running tasks")
        test_host.cut()
        cut_at = time.time()
        survivors = [w for w in cluster.workers if w is not cut]
        try:
            done = wait_all_finished(Survivors(cluster, survivors), ids, timeout=90)
        finally:
            test_host.restore()
        assert cut.alive, cut.tail()
        cluster.wait_settled(timeout=90)  # it rejoined: every worker alive, partitions covered
        after = wait_all_finished(cluster, ids, timeout=30)
        # The worker cannot know at once that it is cut off: it holds back once the
        # group's heartbeats have failed for half a session (1 s here); what it started
        # before then counts as in flight.
        noticed_at = cut_at + 1.0 + NOTICE_MARGIN
        figures = check(ledger.read(), after, faulty=cut.worker_id, fault_at=noticed_at, allow_stale_finish=True)
        assert figures["in_flight"] >= 2
        in_flight = ledger.in_flight(cut.worker_id, noticed_at)
        for t in ids:
            assert after[t]["status"] == "success" and after[t]["attempts"] >= done[t]["attempts"]
            if t in in_flight:  # run again elsewhere; the cut worker's late outcome was fenced
                assert after[t]["worker"] != cut.worker_id, after[t]
        assert sorted(after[t]["result"] for t in ids) == list(range(30))
        for w in cluster.workers:  # every worker answers the same, the rejoined one too
            r = httpx.get(f"{w.url}/tasks/{ids[0]}", timeout=10)
            assert r.status_code == 200 and r.json()["status"] == "success"
        assert Client(cut.url).submit("add", 2, 3).result(timeout=30) == 5
    finally:
        cluster.stop()
        broker.stop()


class Survivors:
    """A view of ``cluster`` that reads through ``workers`` only (the cut one cannot answer)."""

    def __init__(self, cluster: Cluster, workers: list[Any]) -> None:
        self._cluster = cluster
        self._workers = workers

    def running(self) -> list[Any]:
        return [w for w in self._workers if w.alive]
