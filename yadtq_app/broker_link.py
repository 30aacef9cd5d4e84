"""Which broker a worker talks to, waiting for it, and noticing when it goes away.

A worker starts only once the broker answers: until then it serves ``503
{"reason": "broker-unavailable"}`` on its HTTP port and tries again every second
(:func:`wait_for_broker`), instead of dying with ``Unable to bootstrap``. While it
runs, :class:`BrokerWatch` asks the broker for its cluster id every two seconds;
when the broker has not answered for ``YADTQ_BROKER_LOST_AFTER`` seconds, or answers
with another cluster id (the embedded broker was restarted: every topic is gone), or
at once when a memory-only broker (the embedded one) closes its connections,
the worker replaces itself with a fresh start of the same command (same pid), which
waits for the broker and rebuilds its tables (:mod:`yadtq_app.datadir`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from typing import Any, Callable, Optional

from aiohttp import web
from aiokafka import AIOKafkaClient, AIOKafkaConsumer, TopicPartition
from aiokafka.protocol.metadata import MetadataRequest

from .datadir import BrokerMarker
from .security import client_options
from .settings import Settings

__all__ = ["describe_broker", "wait_for_broker", "BrokerWatch", "restart_process"]

logger = logging.getLogger(__name__)

#: Seconds one look at the broker may take.
PROBE_TIMEOUT = 5.0


async def cluster_id(client: AIOKafkaClient) -> Optional[str]:
    """The cluster id the broker reports (Metadata v2+)."""
    node = client.get_random_node()
    if node is None:
        raise ConnectionError("no broker known")
    resp = await client.send(node, MetadataRequest(topics=[], allow_auto_topic_creation=False))
    return getattr(resp, "cluster_id", None)


async def describe_broker(settings: Settings, topics: list[str]) -> BrokerMarker:
    """The broker's cluster id and the end offsets of ``topics`` (those that exist)."""
    opts = client_options(settings)
    client = AIOKafkaClient(bootstrap_servers=settings.bootstrap_servers, **opts)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False, **opts)
    try:
        await client.bootstrap()
        node = client.get_random_node()
        if node is None:
            raise ConnectionError("no broker known")
        meta = await client.send(node, MetadataRequest(topics=list(topics), allow_auto_topic_creation=False))
        cid = getattr(meta, "cluster_id", None)
        tps = [TopicPartition(t[1], p[1]) for t in meta.topics if t[0] == 0 for p in t[-1]]
        ends: dict[TopicPartition, int] = {}
        if tps:
            await consumer.start()
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
        offsets: dict[str, dict[str, int]] = {}
        for tp, end in ends.items():
            offsets.setdefault(tp.topic, {})[str(tp.partition)] = int(end)
        return BrokerMarker(cluster_id=cid, end_offsets=offsets)
    finally:
        await consumer.stop()
        await client.close()


async def _unavailable(request: web.Request) -> web.Response:
    return web.json_response({"error": "this worker is waiting for the broker; retry", "reason": "broker-unavailable"},
                             status=503, headers={"Retry-After": "1"})


async def wait_for_broker(settings: Settings, topics: list[str], *, host: str, port: int) -> BrokerMarker:
    """:func:`describe_broker` once the broker answers, trying every second; meanwhile
    every HTTP request to ``host:port`` is answered ``503``."""
    runner: Optional[web.AppRunner] = None
    waited_since: Optional[float] = None
    try:
        while True:
            quiet = logging.getLogger("aiokafka")
            level = quiet.level
            if waited_since is not None:  # said once below: not aiokafka's line a second
                quiet.setLevel(logging.CRITICAL)
            try:
                found = await asyncio.wait_for(describe_broker(settings, topics), PROBE_TIMEOUT)
                if waited_since is not None:
                    logger.warning("the broker at %s answers again (after %.0f s)", settings.bootstrap_servers,
                                   time.monotonic() - waited_since)
                return found
            except Exception as exc:  # noqa: BLE001 - any failure means: not there yet
                if waited_since is None:
                    waited_since = time.monotonic()
                    logger.warning("cannot reach the broker at %s (%s); waiting for it, answering HTTP 503 on "
                                   "port %d meanwhile", settings.bootstrap_servers, exc or type(exc).__name__, port)
                if runner is None:
                    runner = await _serve_unavailable(host, port)
            finally:
                quiet.setLevel(level)
            await asyncio.sleep(1.0)
    finally:
        if runner is not None:
            await runner.cleanup()


async def _serve_unavailable(host: str, port: int) -> web.AppRunner:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _unavailable)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    return runner


def restart_process(reason: str) -> None:
    """Replace this process by a fresh start of the same command (same pid): it waits
    for the broker and checks its tables again (see the module docs)."""
    logger.warning("%s: restarting this worker (pid %d stays) to wait for the broker and rebuild its tables",
                   reason, os.getpid())
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:  # noqa: BLE001 - restarting anyway
            pass
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


class BrokerWatch:
    """Restarts the worker when its broker is gone for ``lost_after`` seconds or was
    replaced by another cluster (call :meth:`check` every few seconds)."""

    def __init__(self, settings: Settings, started_with: Optional[str], *, lost_after: float,
                 restart: Callable[[str], Any] = restart_process) -> None:
        self.settings = settings
        #: The cluster id the worker's tables belong to (checked at start).
        self.started_with = started_with
        self.lost_after = lost_after
        self.restart = restart
        self._client: Optional[AIOKafkaClient] = None
        self._failing_since: Optional[float] = None

    async def check(self) -> None:
        try:
            if self._client is None:
                self._client = AIOKafkaClient(bootstrap_servers=self.settings.bootstrap_servers,
                                              **client_options(self.settings))
                await asyncio.wait_for(self._client.bootstrap(), PROBE_TIMEOUT)
            found = await asyncio.wait_for(cluster_id(self._client), PROBE_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - unreachable, for now
            await self.close()
            now = time.monotonic()
            if self._failing_since is None:
                self._failing_since = now
                logger.warning("the broker at %s does not answer (%s)", self.settings.bootstrap_servers,
                               exc or type(exc).__name__)
            elif now - self._failing_since >= self.lost_after:
                self.restart(f"the broker at {self.settings.bootstrap_servers} has not answered for "
                             f"{now - self._failing_since:.0f} s")
            return
        self._failing_since = None
        if self.started_with is not None and found != self.started_with:
            self.restart(f"the broker at {self.settings.bootstrap_servers} is another cluster now "
                         f"({found!r}, was {self.started_with!r}): its topics are not those this worker's tables "
                         "came from")

    async def watch_hangup(self) -> None:
        """Restart the worker the moment the broker goes away: hold a connection open
        to the first bootstrap address and, once the broker closes it, restart unless
        a new connection is accepted at once. For a memory-only broker (the embedded
        one), whose next start is another, empty cluster; runs until cancelled."""
        host, port = self.settings.broker_hosts[0]
        while True:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), PROBE_TIMEOUT)
            except (OSError, asyncio.TimeoutError) as exc:
                self.restart(f"the broker at {host}:{port} is gone ({exc or type(exc).__name__}), and with it every "
                             "topic it kept in memory")
                return
            try:
                await reader.read()  # nothing is sent, so nothing comes back: returns at EOF
            except OSError:
                pass
            finally:
                writer.close()

    def explains_crash(self) -> Optional[str]:
        """Why the worker's crash is the broker's doing (it does not answer, or is
        another cluster now), or ``None``; blocks up to :data:`PROBE_TIMEOUT` (call it
        from a thread of its own: the crash watch's)."""

        async def probe() -> Optional[str]:
            client = AIOKafkaClient(bootstrap_servers=self.settings.bootstrap_servers,
                                    **client_options(self.settings))
            try:
                await client.bootstrap()
                return await cluster_id(client)
            finally:
                await client.close()

        try:
            found = asyncio.run(asyncio.wait_for(probe(), PROBE_TIMEOUT))
        except Exception as exc:  # noqa: BLE001 - not answering is the answer
            return f"the broker at {self.settings.bootstrap_servers} does not answer ({exc or type(exc).__name__})"
        if self.started_with is not None and found != self.started_with:
            return f"the broker at {self.settings.bootstrap_servers} is another cluster now ({found!r})"
        return None

    def unreachable_for(self) -> float:
        """Seconds the broker has not answered (0 while it does)."""
        return 0.0 if self._failing_since is None else time.monotonic() - self._failing_since

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            try:
                await client.close()
            except Exception:  # noqa: BLE001 - closing a broken client
                pass
