"""BrokerWatch.watch_hangup against a plain TCP server standing in for the broker."""

from __future__ import annotations

import asyncio
from typing import Callable

from yadtq_app.broker_link import BrokerWatch
from yadtq_app.settings import Settings


async def _listen(port: int = 0) -> tuple[asyncio.Server, list[asyncio.StreamWriter]]:
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", port)
    return server, held


def _watch(port: int, restarts: list[str]) -> BrokerWatch:
    return BrokerWatch(Settings(broker_url=f"kafka://127.0.0.1:{port}"), "cluster-a", lost_after=60,
                       restart=restarts.append)


async def _until(check: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_broker_that_goes_away_restarts_the_worker_at_once() -> None:
    server, held = await _listen()
    port = server.sockets[0].getsockname()[1]
    restarts: list[str] = []
    watcher = asyncio.create_task(_watch(port, restarts).watch_hangup())
    await _until(lambda: held)
    assert restarts == []
    server.close()
    await server.wait_closed()
    for writer in held:
        writer.close()
    await asyncio.wait_for(watcher, 5)
    assert len(restarts) == 1 and f"127.0.0.1:{port} is gone" in restarts[0]


async def test_a_closed_connection_to_a_broker_still_there_is_not_a_restart() -> None:
    server, held = await _listen()
    port = server.sockets[0].getsockname()[1]
    restarts: list[str] = []
    watcher = asyncio.create_task(_watch(port, restarts).watch_hangup())
    try:
        await _until(lambda: held)
        held[0].close()  # the broker drops an idle connection, and accepts the next one
        await _until(lambda: len(held) == 2)
        assert restarts == [] and not watcher.done()
    finally:
        watcher.cancel()
        server.close()
        await server.wait_closed()
