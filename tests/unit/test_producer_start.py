"""YadtqApp.maybe_start_producer: every record sent asks it, so it must not yield once
the producer runs (mode's ``stampede`` yielded three times per call)."""

from __future__ import annotations

import asyncio
from typing import Any, Iterator

import faust
import pytest

from yadtq_app.application import app


@pytest.fixture
def producer() -> Iterator[Any]:
    producer = app.producer  # built, not started: no broker is asked
    yield producer
    producer._started.clear()


async def test_a_started_producer_comes_back_without_a_round_of_the_loop(producer: Any) -> None:
    producer._started.set()  # as once the worker started it
    rounds = []
    asyncio.get_running_loop().call_soon(rounds.append, "a round of the loop")
    assert await app.maybe_start_producer() is producer
    assert rounds == []  # nothing else ran meanwhile
    await asyncio.sleep(0)
    assert rounds == ["a round of the loop"]


async def test_a_producer_not_started_is_started_first_one_caller_at_a_time(producer: Any,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    starts, inside = [], []

    async def maybe_start() -> bool:
        inside.append(1)
        assert len(inside) == 1, "two callers started the producer at once"
        await asyncio.sleep(0.01)
        starts.append(not producer._started.is_set())
        producer._started.set()
        inside.pop()
        return starts[-1]

    monkeypatch.setattr(producer, "maybe_start", maybe_start)
    assert await asyncio.gather(*(app.maybe_start_producer() for _ in range(3))) == [producer] * 3
    assert starts[0] is True and all(s is False for s in starts[1:])


def test_fausts_own_start_is_still_reachable() -> None:
    # The fallback calls Faust's method without mode's stampede wrapper.
    assert asyncio.iscoroutinefunction(faust.App.maybe_start_producer.__wrapped__)
