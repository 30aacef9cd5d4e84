"""Long polls forwarded between workers do not starve other forwarded requests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from tests.support.routing import holders, owner_and_other, partition_of
from yadtq_app import Client
from yadtq_app.ids import quote_id

pytestmark = pytest.mark.integration

LONG_POLLS = 500
WAIT = 8.0


def test_a_forwarded_read_stays_fast_while_500_long_polls_are_forwarded(shared_cluster: Any) -> None:
    cluster = shared_cluster
    # A finished task, and long-poll ids, all held by one worker and read through the other.
    known = Client(cluster.workers[0].url).submit("add", 1, 1)
    assert known.result(timeout=30) == 2
    owner, through = owner_and_other(cluster, known.id)
    held_by = holders(cluster)
    polled: list[str] = []
    n = 0
    while len(polled) < LONG_POLLS:
        candidate = f"poll-{cluster.tag}-{n}"
        n += 1
        if held_by[partition_of(candidate, cluster.partitions)] is owner:
            polled.append(candidate)

    async def run() -> list[float]:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            async def long_poll(task_id: str) -> int:
                async with http.get(f"{through.url}/tasks/{quote_id(task_id)}", params={"wait": str(WAIT)},
                                    timeout=aiohttp.ClientTimeout(total=WAIT + 20)) as resp:
                    await resp.read()
                    return resp.status

            polls = [asyncio.ensure_future(long_poll(t)) for t in polled]
            await asyncio.sleep(2.0)  # all sent and being held (a deadline, not a condition: see below)
            assert not any(p.done() for p in polls), "a long poll ended early"
            took = []
            for _ in range(5):
                t0 = time.monotonic()
                async with http.get(f"{through.url}/tasks/{known.id}",
                                    timeout=aiohttp.ClientTimeout(total=WAIT + 10)) as resp:
                    assert resp.status == 200, await resp.text()
                    assert (await resp.json())["result"] == 2
                took.append(time.monotonic() - t0)
            statuses = await asyncio.gather(*polls)
            assert set(statuses) == {404}, set(statuses)  # held the whole wait, then: never submitted
            return took

    took = asyncio.run(asyncio.wait_for(run(), WAIT + 60))
    assert max(took) < 1.0, took
