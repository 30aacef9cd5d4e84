"""Routing between workers: a request about a table row is answered by the worker that
holds the row's partition (``docs/http.md``).

:func:`routed` wraps a view method; :func:`locate` (:func:`locate_many` for many keys)
and :func:`answers_locally` serve views that route by hand (batch reads, the dashboard).
"""

from __future__ import annotations

import asyncio
import logging
from functools import wraps
from typing import Any, Awaitable, Callable, Optional

import aiohttp
from faust.types import TP
from faust.web import Request, Response, View
from yarl import URL

from yadtq_app import encoding
from yadtq_app.api_schema import MAX_WAIT
from yadtq_app.application import app
from yadtq_app.errors import Refused
from yadtq_app.kafka import private
from yadtq_app.kafka.private import tps_url
from yadtq_app.peers import ROUTED_HEADER
from yadtq_app.tables.dead_letters import dead_letters
from yadtq_app.tables.task_status import task_status
from yadtq_app.tables.workers import workers

__all__ = ["routed", "Unroutable", "locate", "locate_many", "key_partition", "answers_locally", "is_local",
           "local_url", "partition_of", "forward", "wait_seconds", "REBALANCING"]

logger = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[Response]]

#: The error of a 503 answered while this worker's partitions are moving.
REBALANCING = "this worker is rebalancing; retry"


class Unroutable(Refused):
    """No owner can be named for a key right now (a 503; the message says why)."""

    def __init__(self, message: str) -> None:
        super().__init__(503, message)


def routed(table: Any, *, key_arg: Optional[str] = None,
           exact_key: Optional[str] = None) -> Callable[[Handler], Handler]:
    """Answer from the worker that holds ``table``'s partition for the request's key
    (``exact_key``, or the handler's keyword argument ``key_arg``).

    Like Faust's ``table_route``, plus: a worker answers locally only when it holds the
    partition as active and is not recovering, a routed request is never routed again,
    and an unreachable owner is a 503. Raises :class:`~yadtq_app.errors.Refused` (503).
    """
    table = getattr(table, "table", table)  # a windowed table's underlying table
    topic = table.changelog_topic.get_topic_name()

    def decorate(fun: Handler) -> Handler:
        @wraps(fun)
        async def handler(view: View, request: Request, **kwargs: Any) -> Response:
            key = exact_key if exact_key is not None else kwargs[key_arg or ""]
            tp, owner = await locate(topic, table.changelog_topic.prepare_key(key, None)[0])
            if is_local(owner) or request.headers.get(ROUTED_HEADER):
                if not answers_locally(tp):
                    raise Refused(503, REBALANCING)
                return await fun(view, request, **kwargs)
            return await forward(view, request, owner)

        return handler

    return decorate


async def locate(topic: str, key: bytes) -> tuple[TP, str]:
    """The partition of ``key`` in ``topic`` and the URL of the worker that owns it.
    Raises :class:`Unroutable`."""
    tp = TP(topic, await partition_of(topic, key))
    owner = tps_url(app.assignor).get(tp)
    if owner is None:
        raise Unroutable("no worker holds this partition right now; retry")
    return tp, owner


async def locate_many(topic: str) -> Callable[[bytes], tuple[TP, Optional[str]]]:
    """For many keys of ``topic``: a function giving a key's partition and the URL of
    the worker that owns it (``None``: no worker holds it now), as :func:`locate` gives
    them, with the producer's metadata and the group's assignment read once instead of
    per key. Raises :class:`Unroutable` if the topic's partitions are not known."""
    partitions = await _partitions(topic)
    owners = tps_url(app.assignor)

    def where(key: bytes) -> tuple[TP, Optional[str]]:
        tp = TP(topic, key_partition(key, partitions))
        return tp, owners.get(tp)

    return where


def key_partition(key: bytes, partitions: list[int]) -> int:
    """The partition of ``partitions`` (sorted) that the producer sends ``key`` to: the
    Java client's default partitioner, as aiokafka's."""
    return partitions[encoding.partition_of(key, len(partitions))]


def local_url() -> str:
    """This worker's URL, as the group's assignment names owners."""
    return str(app.conf.canonical_url)


def is_local(owner: str) -> bool:
    """``owner`` (a worker URL) is this worker."""
    return owner == local_url()


def answers_locally(tp: TP) -> bool:
    """This worker holds ``tp`` as active and its tables are complete."""
    return bool(app.assignor.is_active(tp)) and not app.rebalancing and not app.in_recovery


async def partition_of(topic: str, key: bytes) -> int:
    """The partition the producer sends ``key`` to in ``topic`` (:func:`key_partition`).
    Raises :class:`Unroutable` if the topic's partitions are not known."""
    return key_partition(key, await _partitions(topic))


async def _partitions(topic: str) -> list[int]:
    """``topic``'s partitions, sorted, from the producer's metadata (loaded if it has
    none for the topic yet). Raises :class:`Unroutable` if they cannot be known."""
    kafka = private.ensure_producer(app.producer)
    try:
        partitions = sorted(await kafka.partitions_for(topic))
    except Exception:  # noqa: BLE001 - no metadata for the topic: nobody can be named
        partitions = []
    if not partitions:
        raise Unroutable("the cluster is rebalancing; retry")
    return partitions


def wait_seconds(request: Request) -> Optional[float]:
    """``?wait=S`` as seconds; ``None`` if absent. Raises ValueError unless a number in
    (0, MAX_WAIT]."""
    raw = request.query.get("wait")
    if raw is None:
        return None
    try:
        wait = float(raw)
    except ValueError:
        wait = float("nan")
    if not 0 < wait <= MAX_WAIT:  # also false for nan
        raise ValueError(f"'wait' must be a number of seconds above 0 and at most {MAX_WAIT:g}, not {raw!r}")
    return wait


async def forward(view: View, request: Request, owner: str) -> Response:
    """The owner's answer to ``request``, sent on with its raw path and query (a long
    poll on its own connection pool). Raises :class:`~yadtq_app.errors.Refused` (503)
    if the owner does not answer."""
    url = URL(f"{owner.rstrip('/')}{request.rel_url.raw_path}", encoded=True)
    if request.rel_url.raw_query_string:
        url = URL(f"{url}?{request.rel_url.raw_query_string}", encoded=True)
    headers = {ROUTED_HEADER: "1", "Accept": "application/json"}
    body = await request.read() if request.method == "POST" else None
    try:
        wait = wait_seconds(request) or 0.0
    except ValueError:
        wait = 0.0
    http = app.long_poll_http if wait else app.http_client
    try:
        async with http.request(request.method, url, headers=headers, data=body,
                                timeout=aiohttp.ClientTimeout(total=10 + wait)) as resp:
            body = await resp.read()
            app.silent_peers.answered(owner)
            out = view.bytes(body, content_type="application/json", status=resp.status)
            if "Retry-After" in resp.headers:
                out.headers["Retry-After"] = resp.headers["Retry-After"]
            return out
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        app.silent_peers.failed(owner, request.url.path, exc)
        raise Refused(503, f"the worker holding this task ({owner}) did not answer; retry") from None


async def _warm_router_metadata() -> None:
    """Load producer metadata for the table topics so the first routed read works."""
    for table in (task_status, workers.table, dead_letters):
        try:
            await app.warm_metadata(table.changelog_topic.get_topic_name())
        except Exception:  # noqa: BLE001 - routing retries on demand
            logger.warning("could not load metadata for %s", table.changelog_topic.get_topic_name())


app.task(_warm_router_metadata)
