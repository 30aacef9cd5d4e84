"""A settled cluster at work logs no warning and no error, past Faust's stall timeout too;
a worker that joins it in a rolling restart reads no freeze into its start."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from faust.types.settings import Settings as FaustSettings

from tests.support.wait import wait_for
from yadtq_app import Client

pytestmark = pytest.mark.integration

#: Faust's commit interval (yadtq keeps its default); its stall check runs every 2.5 of them.
COMMIT_INTERVAL = FaustSettings.broker_commit_interval.default
FAUST_CHECK_EVERY = 2.5 * COMMIT_INTERVAL
STALL_TIMEOUT = 4.0
#: A commit interval and a watchdog check: a finished task's offset is committed by then.
COMMITTED_WITHIN = COMMIT_INTERVAL + 1.0

_NOISE = re.compile(r"\[(WARNING|ERROR|CRITICAL)\]")


def test_a_working_cluster_logs_nothing_past_the_stall_timeout(cluster_factory: Any) -> None:
    cluster = cluster_factory(extra_env={"YADTQ_STREAM_PROCESSING_TIMEOUT": str(STALL_TIMEOUT)}).start(2)
    started = time.monotonic()
    marks = [len(w.log_text()) for w in cluster.workers]
    client = Client(cluster.running()[0].url)
    assert [client.submit("add", i, 1).result(timeout=30) for i in range(16)] == [i + 1 for i in range(16)]
    # A task longer than the stream watchdog's stall, the last of its partition: once it
    # finishes, its partition is idle and not committed to its end until the next commit.
    assert client.submit("sleep", 6.0).result(timeout=30) == 6.0
    finished = time.monotonic()
    # Faust's check has run past the stall timeout (its first one may come too soon after
    # the consumer's start), and the long task's offset has been committed.
    until = max(started + 2 * FAUST_CHECK_EVERY + 1.0, finished + COMMITTED_WITHIN)
    wait_for(lambda: time.monotonic() > until, timeout=60, interval=0.5, message="the checks to run")
    for w, mark in zip(cluster.workers, marks):
        logged = [line for line in w.log_text()[mark:].splitlines() if _NOISE.search(line)]
        assert logged == [], f"{w.worker_id}:\n" + "\n".join(logged[:10])
        assert w.alive

    # A rolling restart: a worker that joins recovers its tables before Faust starts its
    # timers, which is no freeze.
    cluster.workers[0].stop()
    joiner = cluster.add(1)[0]
    joiner.wait_healthy(60)
    cluster.wait_settled(60)
    assert Client(joiner.url).submit("add", 2, 2).result(timeout=30) == 4
    for w in cluster.running():
        assert "was frozen" not in w.log_text(), w.tail()
