"""The worker consumer's requests never wait behind a fetch held at the broker.

A Kafka broker answers the requests of one connection one at a time, in order, and holds
a fetch of idle partitions for the fetch wait. aiokafka sends every request of its
fetcher (fetches, and the ListOffsets of seeks and end offsets) on one connection per
broker, and sends no new fetch to a broker while one is in flight there: with a long
fetch wait, a seek, a resumed partition or an end-offset request waited for the fetch
in flight. :class:`FetchLanes` is the fetcher's client instead: it sends each request on
the first of a few connections ("lanes") to that broker with no fetch in flight, and
:meth:`FetchLanes.wake` makes the fetcher give up waiting for its fetches in flight and
send new ones at once, on other lanes (the broker still answers the old ones, which are
dropped). :func:`install_lanes` wakes the fetcher after every seek and offset reset.
Why: ``docs/brokers.md``, "Fetch waits".
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from aiokafka.client import ConnectionGroup
from aiokafka.protocol.fetch import FetchRequest

from . import private

__all__ = ["FetchLanes", "install_lanes", "MAX_LANES"]

logger = logging.getLogger(__name__)

#: Connections per broker at most. A lane is a connection group of aiokafka's client,
#: which keeps one connection per ``(node, group)``: the default group, then groups
#: above the coordinator's.
MAX_LANES = 4
_LANES: tuple[int, ...] = (int(ConnectionGroup.DEFAULT),
                          *range(int(ConnectionGroup.COORDINATION) + 1, int(ConnectionGroup.COORDINATION) + MAX_LANES))


class FetchLanes:
    """An aiokafka client for a consumer's fetcher: requests go on lanes with no fetch
    in flight; everything but :meth:`send` is the wrapped client's."""

    def __init__(self, client: Any) -> None:
        self._client = client
        #: (node, lane) → fetches sent there and not answered yet (dropped ones included).
        self._fetches: dict[tuple[int, int], int] = {}
        #: The fetcher's tasks waiting for a fetch answer (what :meth:`wake` cancels).
        self._waiting: set[asyncio.Task[Any]] = set()
        #: How many times :meth:`wake` cancelled a fetch (for tests and ``GET /health``).
        self.wakes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def lane_for(self, node_id: int) -> int:
        """The lane for the next request to ``node_id``: the first with no fetch in
        flight (the default lane if every one has)."""
        for lane in _LANES:
            if not self._fetches.get((node_id, lane)):
                return lane
        return _LANES[0]

    def spare_lane(self) -> bool:
        """Whether every broker with a fetch in flight has a lane without one: a fetch
        sent now would not queue behind a held one."""
        nodes = {node for node, _lane in self._fetches}
        return all(any(not self._fetches.get((node, lane)) for lane in _LANES) for node in nodes)

    async def send(self, node_id: int, request: Any, *, group: int = ConnectionGroup.DEFAULT) -> Any:
        """aiokafka's ``AIOKafkaClient.send``, on a lane of this broker's."""
        if group != ConnectionGroup.DEFAULT:
            return await self._client.send(node_id, request, group=group)
        lane = self.lane_for(node_id)
        if not isinstance(request, FetchRequest):
            return await self._client.send(node_id, request, group=lane)
        key = (node_id, lane)
        self._fetches[key] = self._fetches.get(key, 0) + 1
        # The request goes on even if the fetcher stops waiting for it (wake): its lane
        # is busy until the broker has answered.
        sent = asyncio.ensure_future(self._client.send(node_id, request, group=lane))
        sent.add_done_callback(lambda answer: self._answered(key, answer))
        task = asyncio.current_task()
        if task is not None:
            self._waiting.add(task)
        try:
            return await asyncio.shield(sent)
        finally:
            if task is not None:
                self._waiting.discard(task)

    def _answered(self, key: tuple[int, int], answer: asyncio.Future[Any]) -> None:
        if not answer.cancelled():
            answer.exception()  # seen: a fetch the fetcher stopped waiting for fails unread (a closed connection)
        left = self._fetches.get(key, 1) - 1
        if left > 0:
            self._fetches[key] = left
        else:
            self._fetches.pop(key, None)

    def wake(self) -> None:
        """Stop waiting for the fetches in flight: the fetcher sends new ones now (call
        in the fetcher's loop). aiokafka's fetcher takes the cancel of its fetch request
        as "no longer of interest" and plans the next round."""
        for task in list(self._waiting):
            task.cancel()
            self.wakes += 1
        self._waiting.clear()


def install_lanes(kafka: Any) -> FetchLanes | None:
    """Give a started aiokafka consumer's fetcher :class:`FetchLanes`, and wake it after
    each seek and offset reset; ``None`` (nothing changed) if its fetcher is not the one
    this was written for."""
    fetcher = private.consumer_fetcher(kafka)
    client = private.fetcher_client(fetcher)
    if fetcher is None or client is None or not all(callable(getattr(fetcher, m, None))
                                                     for m in ("seek_to", "request_offset_reset")):
        logger.warning("aiokafka's fetcher has changed: its requests may wait behind a fetch in flight")
        return None
    lanes = FetchLanes(client)
    private.set_fetcher_client(fetcher, lanes)
    for method in ("seek_to", "request_offset_reset"):
        setattr(fetcher, method, _then_wake(getattr(fetcher, method), lanes))
    return lanes


def _then_wake(method: Callable[..., Any], lanes: FetchLanes) -> Callable[..., Any]:
    def moved(*args: Any, **kwargs: Any) -> Any:
        result = method(*args, **kwargs)
        lanes.wake()  # the fetch in flight asks from the old position: do not wait for it
        return result

    return moved
