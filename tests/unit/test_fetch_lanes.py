"""Fetch lanes: no request of the fetcher waits behind a fetch held at the broker
(``yadtq_app.kafka.lanes``), against a stand-in for aiokafka's client."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.protocol.offset import OffsetRequest

from yadtq_app.kafka.lanes import MAX_LANES, FetchLanes, install_lanes

NODE = 1


class FakeClient:
    """Records each request with its connection group; the test answers it."""

    cluster = "the client's cluster metadata"

    def __init__(self) -> None:
        self.sent: list[tuple[int, int, Any, asyncio.Future[Any]]] = []

    async def send(self, node_id: int, request: Any, *, group: int = 0) -> Any:
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append((node_id, group, request, answer))
        return await answer

    def lanes_used(self) -> list[int]:
        return [group for _, group, _, _ in self.sent]


def fetch() -> FetchRequest:
    return FetchRequest(1000, 1, 50_000_000, 0, [("tasks", [(0, 0, 1_048_576)])])


def offsets() -> OffsetRequest:
    return OffsetRequest(-1, 0, [("events", [(0, -1)])])


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_request_goes_on_a_lane_with_no_fetch_in_flight() -> None:
    client = FakeClient()
    lanes = FetchLanes(client)
    first = asyncio.ensure_future(lanes.send(NODE, offsets()))
    await settle()
    assert client.lanes_used() == [0]  # control: nothing in flight, the default connection
    client.sent[0][3].set_result("listed")
    assert await first == "listed"

    held = asyncio.ensure_future(lanes.send(NODE, fetch()))
    await settle()
    listed = asyncio.ensure_future(lanes.send(NODE, offsets()))
    await settle()
    assert client.lanes_used() == [0, 0, 2]  # the ListOffsets does not queue behind the held fetch
    client.sent[2][3].set_result("listed")
    assert await listed == "listed" and not held.done()
    assert lanes.cluster == FakeClient.cluster  # the rest is the client's


async def test_wake_stops_the_wait_and_the_next_fetch_takes_another_lane() -> None:
    client = FakeClient()
    lanes = FetchLanes(client)
    held = asyncio.ensure_future(lanes.send(NODE, fetch()))
    await settle()
    lanes.wake()
    with pytest.raises(asyncio.CancelledError):  # what aiokafka's fetcher takes as "no longer of interest"
        await held
    assert lanes.wakes == 1
    again = asyncio.ensure_future(lanes.send(NODE, fetch()))
    await settle()
    assert client.lanes_used() == [0, 2]  # the dropped fetch still holds the default connection
    client.sent[0][3].set_result("late answer")  # the broker answers the dropped one: its lane is free again
    await settle()
    listed = asyncio.ensure_future(lanes.send(NODE, offsets()))
    await settle()
    assert client.lanes_used() == [0, 2, 0]
    client.sent[2][3].set_result("listed")
    client.sent[1][3].set_result("records")
    assert await listed == "listed" and await again == "records"
    lanes.wake()
    assert lanes.wakes == 1  # nothing was waiting: nothing to cancel


async def test_a_spare_lane_is_one_with_no_fetch_held() -> None:
    client = FakeClient()
    lanes = FetchLanes(client)
    assert lanes.spare_lane()  # nothing in flight
    for held in range(MAX_LANES):
        asyncio.ensure_future(lanes.send(NODE, fetch()))
        await settle()
        assert lanes.spare_lane() == (held < MAX_LANES - 1)
        lanes.wake()  # given up on, but still held at the broker
    assert client.lanes_used() == [0, *range(2, MAX_LANES + 1)]
    client.sent[1][3].set_result("late answer")
    await settle()
    assert lanes.spare_lane()


async def test_coordinator_requests_keep_their_connection() -> None:
    client = FakeClient()
    lanes = FetchLanes(client)
    held = asyncio.ensure_future(lanes.send(NODE, fetch()))
    await settle()
    beat = asyncio.ensure_future(lanes.send(NODE, offsets(), group=1))
    await settle()
    assert client.lanes_used() == [0, 1]
    held.cancel()
    beat.cancel()
    await settle()


class FakeFetcher:
    def __init__(self, client: Any) -> None:
        self._client = client
        self.moves: list[tuple[Any, ...]] = []

    def seek_to(self, tp: Any, offset: int) -> None:
        self.moves.append(("seek", tp, offset))

    def request_offset_reset(self, tps: Any, strategy: int) -> str:
        self.moves.append(("reset", tps, strategy))
        return "waiters"


class FakeConsumer:
    def __init__(self, fetcher: Any) -> None:
        self._fetcher = fetcher


async def test_a_seek_or_reset_wakes_the_fetcher() -> None:
    client = FakeClient()
    fetcher = FakeFetcher(client)
    lanes = install_lanes(FakeConsumer(fetcher))
    assert lanes is not None and fetcher._client is lanes
    held = asyncio.ensure_future(lanes.send(NODE, fetch()))
    await settle()
    fetcher.seek_to("tp", 5)
    await asyncio.gather(held, return_exceptions=True)
    assert held.cancelled() and lanes.wakes == 1
    held = asyncio.ensure_future(lanes.send(NODE, fetch()))
    await settle()
    assert fetcher.request_offset_reset(["tp"], 1) == "waiters"
    await asyncio.gather(held, return_exceptions=True)
    assert held.cancelled() and lanes.wakes == 2 and fetcher.moves == [("seek", "tp", 5), ("reset", ["tp"], 1)]


def test_an_unknown_fetcher_is_left_alone() -> None:
    class Other:
        pass

    consumer = FakeConsumer(Other())
    assert install_lanes(consumer) is None


async def test_a_dropped_fetch_that_fails_is_not_reported_as_unretrieved() -> None:
    # A fetch the fetcher stopped waiting for (wake), whose connection then closes (a
    # worker stopping, a broker gone): nobody awaits it, and asyncio must not log
    # "Task exception was never retrieved" at ERROR for it.
    import gc

    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    client = FakeClient()
    lanes = FetchLanes(client)
    held = asyncio.ensure_future(lanes.send(NODE, fetch()))
    await settle()
    lanes.wake()
    with pytest.raises(asyncio.CancelledError):
        await held
    client.sent[0][3].set_exception(ConnectionError("Connection at 127.0.0.1:9092 closed"))
    await settle()
    del held
    client.sent.clear()
    gc.collect()
    await settle()
    assert lanes.lane_for(NODE) == 0  # the failed fetch freed its lane
    assert not [c for c in reported if "never retrieved" in c.get("message", "")], reported
