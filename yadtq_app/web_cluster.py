"""HTTP views on the cluster and the worker itself: ``GET /workers``,
``/dead-letters``, ``/registry``, ``/metrics``, ``/health``, ``/openapi.json`` and
``/docs``; and the timer that learns what the other workers register."""

from __future__ import annotations

import asyncio
import logging
import time
from functools import lru_cache
from typing import Any

import aiohttp
from faust.web import Request, Response, View

from yadtq_app import __version__, openapi
from yadtq_app.application import app, settings
from yadtq_app.errors import Refused
from yadtq_app.kafka.fetch_wait import fetch_state
from yadtq_app.liveness import crash_reason
from yadtq_app.metrics import CONTENT_TYPE_LATEST
from yadtq_app.peers import differing
from yadtq_app.registry import describe_task
from yadtq_app.routing import routed
from yadtq_app.tables.dead_letters import dead_letters, list_dead_letters
from yadtq_app.tables.workers import latest_heartbeats, workers

__all__ = ["WorkersView", "DeadLettersView", "RegistryView", "MetricsView", "HealthView", "OpenApiView",
           "DocsView"]

logger = logging.getLogger(__name__)


@app.page("/workers")
class WorkersView(View):
    """``GET /workers``: every worker heard from in the retention window."""

    @routed(workers, exact_key="workers")
    async def get(self, request: Request) -> Response:
        now = time.time()
        timeout = settings.effective_worker_timeout
        rows = [hb.to_json(now=now, timeout=timeout) for hb in latest_heartbeats()]
        mismatched = differing(rows)
        for row in rows:
            row["tasks_differ"] = row["id"] in mismatched
        return self.json({"workers": rows, "alive_timeout": timeout})


async def _refresh_peer_tasks() -> None:
    """Learn what the other alive workers register (``GET /workers``, asked of this
    worker, which routes it to the table's owner); warn of a set unlike this one's."""
    url = f"{str(app.conf.canonical_url).rstrip('/')}/workers"
    try:
        async with app.http_client.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
            if resp.status != 200:
                return
            rows = (await resp.json())["workers"]
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError, TypeError):
        return  # starting, or rebalancing: the next beat asks again
    app.metrics.workers_seen(rows)
    for warning in app.peer_tasks.update(rows):
        logger.warning("%s", warning)


app.timer(interval=settings.heartbeat_interval, name="yadtq.refresh_peer_tasks")(_refresh_peer_tasks)


@app.page("/dead-letters")
class DeadLettersView(View):
    """``GET /dead-letters[?limit=N]``: the newest dead letters, oldest first."""

    @routed(dead_letters, exact_key="dead-letters")
    async def get(self, request: Request) -> Response:
        try:
            limit = int(request.query.get("limit", "1000"))
            if limit < 1:
                raise ValueError
        except ValueError:
            raise Refused(400, "limit must be a positive integer", reason="bad-field") from None
        return self.json({"dead_letters": [d.to_json() for d in list_dead_letters(limit)]})


@app.page("/registry")
class RegistryView(View):
    """``GET /registry``: the tasks this worker registers, with their effective options."""

    async def get(self, request: Request) -> Response:
        return self.json({"worker": settings.worker_id, "url": settings.web_url,
                          "task_modules": list(settings.task_modules), "tasks_digest": app.registry.digest(),
                          "tasks": [describe_task(t, settings) for t in app.registry]})


@app.page("/metrics")
class MetricsView(View):
    """``GET /metrics``: this worker's metrics in Prometheus' text format (:mod:`yadtq_app.metrics`)."""

    async def get(self, request: Request) -> Response:
        await app.metrics.refresh()
        # aiohttp takes no charset in content_type; the exposition's type carries one.
        return self.bytes(app.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})


@app.page("/health")
class HealthView(View):
    """``GET /health``: 200 while this worker runs, with the task partitions it holds now
    and what its consumer fetches; 503 if it crashed or the broker does not answer."""

    async def get(self, request: Request) -> Response:
        crashed = crash_reason(app)
        if crashed is not None:  # about to exit (yadtq_app.liveness): never "ok" while dead
            raise Refused(503, f"this worker cannot work: {crashed}", status="crashed")
        watch = app.broker_watch
        if watch is not None and watch.unreachable_for() > 0:
            raise Refused(503, f"the broker has not answered for {watch.unreachable_for():.0f} s",
                          reason="broker-unavailable")
        try:
            held = sorted(tp.partition for tp in app.consumer.assignment() if tp.topic == settings.task_topic)
            fetch = fetch_state(app.consumer)
        except Exception:  # noqa: BLE001 - no consumer yet
            held, fetch = [], {}
        heartbeats = getattr(app.consumer, "heartbeats", None)
        return self.json({"status": "ok", "worker": settings.worker_id, "rebalancing": bool(app.rebalancing),
                          "partitions": held, "fetch": fetch, "in_touch": app.in_touch(),
                          "heartbeat_age": round(heartbeats.age(), 3) if heartbeats is not None else None})


@app.page("/openapi.json")
class OpenApiView(View):
    """``GET /openapi.json``: the OpenAPI 3.1 document of this API (:mod:`yadtq_app.openapi`)."""

    async def get(self, request: Request) -> Response:
        return self.json(_document())


@lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    return openapi.document(version=__version__)


@app.page("/docs")
class DocsView(View):
    """``GET /docs``: the document as a self-contained web page (no CDN)."""

    async def get(self, request: Request) -> Response:
        # aiohttp takes no charset in content_type.
        return self.bytes(openapi.docs_page(), headers={"Content-Type": "text/html; charset=utf-8"})
