"""HTTP API, served by every worker (Faust web views).

=======================  ==========================================================
``POST /tasks``          submit; 202 ``{"task-id", "status": "queued"}``; 400 on bad input
``GET /tasks/{id}``      the task's status row; 404 if never submitted
``GET /workers``         every worker seen recently, alive or dead
``GET /dead-letters``    task messages that will never run, with the reason
``GET /health``          this worker answers (for health checks)
=======================  ==========================================================

Reads are routed to the worker that owns the row's partition, so every worker gives
the same answer. A worker that is rebalancing or recovering its tables answers 503
(with ``Retry-After``) rather than a possibly incomplete 404. Errors are JSON:
``{"error": "..."}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from functools import wraps
from typing import Any, Awaitable, Callable, Optional

import aiohttp
from faust.types import TP
from faust.web import Request, Response, View

from tables.dead_letters import dead_letters, list_dead_letters
from tables.task_status import get_status, task_status
from tables.workers import latest_heartbeats, workers
from yadtq_app.application import app, settings
from yadtq_app.errors import InvalidTask
from yadtq_app.records import QUEUED, TaskEvent, task_request_from_json
from yadtq_app.topics import events_topic, task_topic

__all__ = ["TasksView", "TaskView", "WorkersView", "DeadLettersView", "HealthView"]

logger = logging.getLogger(__name__)

ROUTED_HEADER = "X-Yadtq-Routed"
Handler = Callable[..., Awaitable[Response]]


def error(view: View, message: str, status: int, **extra: Any) -> Response:
    headers = {"Retry-After": "1"} if status == 503 else None
    return view.json({"error": message, **extra}, status=status, headers=headers)


def routed(table: Any, *, match_info: Optional[str] = None, exact_key: Optional[str] = None) -> Callable[[Handler], Handler]:
    """Answer from the worker that holds ``table``'s partition for the request's key.

    Like Faust's ``table_route``, plus: a worker only answers locally when it holds
    the partition as active and is not recovering (else 503), a routed request is
    never routed again, and an unreachable owner is a 503, not a 500.
    """
    table = getattr(table, "table", table)  # a windowed table's underlying table
    topic = table.changelog_topic.get_topic_name()

    def decorate(fun: Handler) -> Handler:
        @wraps(fun)
        async def handler(view: View, request: Request, *args: Any, **kwargs: Any) -> Response:
            key = exact_key if exact_key is not None else request.match_info[match_info or ""]
            serialized = table.changelog_topic.prepare_key(key, None)[0]
            try:
                partition = await _partition_of(topic, serialized)
            except KeyError:
                return error(view, "the cluster is rebalancing; retry", 503)
            owner = app.assignor._tps_url.get(TP(topic, partition))
            if owner is None:
                return error(view, "no worker holds this partition right now; retry", 503)
            if owner == str(app.conf.canonical_url) or request.headers.get(ROUTED_HEADER):
                if not app.assignor.is_active(TP(topic, partition)) or app.rebalancing or app.in_recovery:
                    return error(view, "this worker is rebalancing; retry", 503)
                return await fun(view, request, *args, **kwargs)
            return await _forward(view, request, owner)

        return handler

    return decorate


async def _partition_of(topic: str, key: bytes) -> int:
    try:
        return app.producer.key_partition(topic, key).partition  # type: ignore[attr-defined,no-any-return]
    except (TypeError, AttributeError):
        # The producer has no metadata for the topic yet (it never produced to it).
        await app.warm_metadata(topic)
        return app.producer.key_partition(topic, key).partition  # type: ignore[attr-defined,no-any-return]


async def _forward(view: View, request: Request, owner: str) -> Response:
    url = f"{owner.rstrip('/')}{request.url.path}"
    headers = {ROUTED_HEADER: "1", "Accept": "application/json"}
    try:
        async with app.http_client.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=10)) as resp:
            body = await resp.read()
            out = view.bytes(body, content_type="application/json", status=resp.status)
            if "Retry-After" in resp.headers:
                out.headers["Retry-After"] = resp.headers["Retry-After"]
            return out
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        logger.warning("could not reach %s for %s: %s", owner, request.url.path, exc)
        return error(view, f"the worker holding this task ({owner}) did not answer; retry", 503)


@app.page("/tasks")
class TasksView(View):
    """``POST /tasks``: submit a task."""

    async def post(self, request: Request) -> Response:
        raw = await request.read()
        if len(raw) > settings.max_message_bytes:
            return error(self, f"request body exceeds {settings.max_message_bytes} bytes", 413)
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError) as exc:
            return error(self, f"request body is not JSON: {exc}", 400)
        if body is None:
            return error(self, "request body must be a JSON object with a 'task' field", 400)
        try:
            req = task_request_from_json(body)
            app.registry.get(req.task)
        except InvalidTask as exc:
            return error(self, str(exc), 400, reason=exc.reason)
        req.submitted_at = time.time()
        value = req.encode()
        if len(value) > settings.max_message_bytes:
            return error(self, f"task message exceeds {settings.max_message_bytes} bytes", 413)
        queued = TaskEvent(id=req.id, kind=QUEUED, task=req.task, task_args=req.task_args,
                           task_kwargs=req.task_kwargs, at=req.submitted_at, submitted_at=req.submitted_at)
        sent = [await task_topic.send(key=req.key, value=value), await events_topic.send(key=req.key, value=queued)]
        await asyncio.gather(*sent)
        return self.json({"task-id": req.id, "status": QUEUED}, status=202)


@app.page("/tasks/{task_id}")
class TaskView(View):
    """``GET /tasks/{id}``: the status row, from the worker that owns it."""

    @routed(task_status, match_info="task_id")
    async def get(self, request: Request, task_id: str) -> Response:
        state = get_status(task_id)
        if state is None:
            return error(self, f"no task with id {task_id!r}", 404)
        return self.json(state.to_json())


@app.page("/workers")
class WorkersView(View):
    """``GET /workers``: every worker heard from in the retention window."""

    @routed(workers, exact_key="workers")
    async def get(self, request: Request) -> Response:
        now = time.time()
        timeout = settings.effective_worker_timeout
        return self.json({"workers": [hb.to_json(now=now, timeout=timeout) for hb in latest_heartbeats()],
                          "alive_timeout": timeout})


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
            return error(self, "limit must be a positive integer", 400)
        return self.json({"dead_letters": [d.to_json() for d in list_dead_letters(limit)]})


@app.page("/health")
class HealthView(View):
    """``GET /health``: 200 while this worker runs."""

    async def get(self, request: Request) -> Response:
        return self.json({"status": "ok", "worker": settings.worker_id, "rebalancing": bool(app.rebalancing)})


@app.task
async def _warm_router_metadata() -> None:
    """Load producer metadata for the table topics so the first routed read works."""
    for table in (task_status, workers.table, dead_letters):
        try:
            await app.warm_metadata(table.changelog_topic.get_topic_name())
        except Exception:  # noqa: BLE001 - routing retries on demand
            logger.warning("could not load metadata for %s", table.changelog_topic.get_topic_name())
