"""deliver_first: a message's delivery inline, raced against a flow suspension only if it waits."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from tests.support.source import method_source
from yadtq_app.kafka.delivery import deliver_first, is_suspension_wait


async def _not_raced(*awaitables: Any) -> Any:
    raise AssertionError("a delivery that does not wait is not raced")


async def test_a_delivery_that_does_not_wait_ends_inline() -> None:
    async def deliver() -> int:
        return 5

    flow = asyncio.Event()
    suspended = flow.wait()
    got = await deliver_first(deliver(), suspended, _not_raced)
    assert (got.results, got.stopped) == ([5], False)
    assert suspended.cr_frame is None  # closed: never "never awaited"


async def test_a_delivery_that_waits_is_raced_and_goes_on_from_where_it_stopped() -> None:
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def deliver() -> int:
        steps.append("before")
        value = await ready
        steps.append("after")
        return value + 1

    async def race(first: Any, second: Any) -> Any:
        second.close()
        return await first

    flow = asyncio.Event()
    task = asyncio.ensure_future(deliver_first(deliver(), flow.wait(), race))
    await asyncio.sleep(0.01)
    assert steps == ["before"] and not task.done()
    ready.set_result(6)
    assert await asyncio.wait_for(task, 5) == 7
    assert steps == ["before", "after"]


async def test_a_delivery_cancelled_while_it_waits_is_cancelled_inside() -> None:
    cleaned: list[bool] = []

    async def deliver() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            cleaned.append(True)

    async def race(first: Any, second: Any) -> Any:
        second.close()
        return await first

    task = asyncio.ensure_future(deliver_first(deliver(), asyncio.Event().wait(), race))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == [True]


async def test_a_delivery_that_raises_at_once_raises_and_closes_the_race() -> None:
    async def deliver() -> None:
        raise ValueError("bad message")

    suspended = asyncio.Event().wait()
    with pytest.raises(ValueError, match="bad message"):
        await deliver_first(deliver(), suspended, _not_raced)
    assert suspended.cr_frame is None


async def test_only_the_consumers_own_suspension_wait_is_recognised() -> None:
    flow, other = asyncio.Event(), asyncio.Event()
    waits = [flow.wait(), other.wait(), asyncio.sleep(0)]
    try:
        assert [is_suspension_wait(w, flow) for w in waits] == [True, False, False]
    finally:
        for w in waits:
            w.close()


def test_fausts_drain_loop_still_races_each_delivery_against_the_flow_suspension() -> None:
    """``Consumer.wait_first`` recognises one call of Faust's drain loop; a Faust upgrade
    that changes it would silently put every message back on the slow path (batches of
    one). Read as text (``tests.support.source``)."""
    from faust.transport import consumer as faust_consumer

    body = method_source(faust_consumer.Consumer, "_drain_messages")
    call = re.compile(r"await self\.wait_first\(\s*callback\(message\),\s*self\.suspend_flow\.wait\(\)\s*,?\s*\)")
    assert call.search(body), "Faust's _drain_messages no longer calls wait_first(callback(message), " \
                              "suspend_flow.wait()): see yadtq_app/kafka/delivery.py"
