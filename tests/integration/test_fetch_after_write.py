"""On the embedded broker a fetch held at the broker waits out its wait though records
arrive meanwhile: a worker that has just written a task it reads, with nothing else to
process, fetches again at once (``Consumer.fetch_written``) instead of leaving the task
to the end of the fetch in flight."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.embedded_only]

#: Far longer than a submission's round trip may take: without the fetch again, a
#: task written while a fetch is held waits for the broker's next read (it reads
#: again after each half of the rest of the wait: up to 3 s at 6 s), which comes
#: within :data:`QUICK` in one case of six.
LONG_WAIT_MS = 6000
QUICK = 0.5
#: Sequential submissions, each with a lane of its own (the fetches given up stay held).
SUBMISSIONS = 3


def test_a_submission_to_an_idle_worker_runs_without_waiting_out_the_fetch(cluster_factory: Any) -> None:
    cluster = cluster_factory(extra_env={"YADTQ_FETCH_MAX_WAIT_MS": str(LONG_WAIT_MS),
                                         "YADTQ_BUSY_FETCH_MAX_WAIT_MS": str(LONG_WAIT_MS)}).start(1)
    [worker] = cluster.running()
    with httpx.Client(timeout=30) as http:
        assert http.get(worker.url + "/health").json()["fetch"]["wait_ms"] == LONG_WAIT_MS
        took = []
        for i in range(SUBMISSIONS):
            t0 = time.monotonic()
            task_id = http.post(worker.url + "/tasks", json={"task": "add", "args": [i, i]}).json()["task-id"]
            row = http.get(f"{worker.url}/tasks/{task_id}", params={"wait": "10"}).json()
            took.append(time.monotonic() - t0)
            assert row["status"] == "success" and row["result"] == 2 * i, row
        assert max(took) < QUICK, f"submission → result took {', '.join(f'{t:.2f}' for t in took)} s"
