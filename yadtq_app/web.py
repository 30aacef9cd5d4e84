"""HTTP API, served by every worker (Faust web views).

============================  =====================================================
``POST /tasks``               submit; 202 ``{"task-id", "status"}``; 400 on bad input;
                              200 with the existing task if its id was taken
``GET /tasks/{id}``           the task's status row; 404 if never submitted;
                              ``?wait=S``: answer once the task is final, or after
                              ``S`` seconds (at most 60) with the row as it is then
``POST /tasks/status``        many rows at once: ``{"ids": [...]}`` (at most 1,000) →
                              ``{"tasks": {id: row or null}, "unavailable": [...]}``
``POST /tasks/{id}/cancel``   cancel a waiting or running task; 409 if finished
``POST /tasks/{id}/retry``    run a failed or cancelled task again; 409 otherwise
``GET /workers``              every worker seen recently, alive or dead
``GET /dead-letters``         tasks that will never run (invalid, or retries used up)
``GET /health``               this worker answers (for health checks)
``GET /openapi.json``         the OpenAPI 3.1 document of all this (:mod:`yadtq_app.openapi`)
``GET /docs``                 that document as a web page
============================  =====================================================

Bodies are validated with the schemas the document publishes
(:mod:`yadtq_app.api_schema`).

Reads are routed to the worker that owns the row's partition, so every worker gives
the same answer. A batch read (``POST /tasks/status``) is split by owner: one request
per owning worker, in parallel; ``null`` means no such task (a 404 for one id) and ids
listed under ``unavailable`` could not be answered now (their owner is rebalancing or
did not answer: a 503 for one id) and are worth asking again. ``GET /tasks/status`` is
still the task whose id is ``status``. A worker that is rebalancing or recovering its tables answers 503
(with ``Retry-After``) rather than a possibly incomplete 404. Errors are JSON:
``{"error": "...", "reason": "..."}`` (views here, the rest in :mod:`yadtq_app.http_server`).

A task id in a path is read from the raw path (:func:`yadtq_app.ids.unquote_id`), and
a request is forwarded to its owner with its raw path and query, so ``%2F``, ``%3F``,
``%23``, ``%25`` or ``%2E%2E`` in an id never turn into a path, a query, a fragment, an
escape or a step up on the way. Long polls are forwarded on a connection pool of their
own (:attr:`~yadtq_app.application.YadtqApp.long_poll_http`).

A task is found from the moment its ``POST /tasks`` was answered: the 202 comes once
the task message and its ``queued`` event are in Kafka, but the row is written when
the owner's status agent folds that event, a few milliseconds later. So before the
owner answers that a task does not exist (404, ``null``, or the 404 of a cancel or
retry) it folds every event written to the task's partition before the request came
(:func:`agents.status.caught_up_now`: two fetch round trips, ~25 ms on an idle
worker); this was seen to answer 404 for 60 of 100 reads made right after their 202.

Cancel and retry are requests, not table writes: the endpoint checks the row on the
worker that owns it and sends a ``cancel``/``requeue`` event, which the status agent
folds (:mod:`yadtq_app.state` decides what it does to the row). The answer is 202:
the change shows in ``GET /tasks/{id}`` as soon as it is folded.

Submitting an id that exists returns that task (200, ``"duplicate": true``) and
sends nothing. The check is made where the row lives; if it cannot be made (the
cluster is rebalancing) the task is sent anyway and the worker's one-run-per-id rule
(:func:`yadtq_app.state.decide`) still keeps it from running twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import Any, Awaitable, Callable, Optional, Union

import aiohttp
from aiokafka.errors import KafkaError
from faust.exceptions import ProducerSendError
from faust.types import TP
from faust.web import Request, Response, View
from yarl import URL

from yadtq_app import __version__, openapi
from yadtq_app.agents.status import caught_up_now
from yadtq_app.api_schema import MAX_BATCH_IDS, MAX_BULK, MAX_WAIT, problem
from yadtq_app.application import app, settings
from yadtq_app.errors import InvalidTask
from yadtq_app.ids import id_problem, quote_id, unquote_id
from yadtq_app.kafka.fetch_wait import fetch_state
from yadtq_app.kafka.unconfirmed import unconfirmed_reason
from yadtq_app.liveness import crash_reason
from yadtq_app.metrics import CONTENT_TYPE_LATEST
from yadtq_app.ordering import ENQUEUE, SequencerMessage
from yadtq_app.peers import ROUTED_HEADER, differing
from yadtq_app.records import (
    CANCEL,
    CANCELLED,
    FAILED,
    QUEUED,
    REQUEUE,
    SCHEDULED,
    STATUSES,
    TERMINAL,
    TaskEvent,
    TaskRequest,
    TaskState,
    parse_json,
    task_request_from_json,
)
from yadtq_app.registry import describe_task
from yadtq_app.tables.dead_letters import dead_letters, list_dead_letters
from yadtq_app.tables.task_status import get_status, get_status_json, task_status
from yadtq_app.tables.workers import latest_heartbeats, workers
from yadtq_app.topics import events_topic, sequencer_topic, task_topic

__all__ = ["TasksView", "TaskView", "TaskStatusesView", "CancelView", "RetryView", "WorkersView", "DeadLettersView",
           "RegistryView", "MetricsView", "HealthView", "OpenApiView", "DocsView"]

logger = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[Response]]
STATUSES_NOT_FINISHED = frozenset(STATUSES) - TERMINAL


def error(view: View, message: str, status: int, **extra: Any) -> Response:
    headers = {"Retry-After": "1"} if status == 503 else None
    return view.json({"error": message, **extra}, status=status, headers=headers)


def path_task_id(fun: Handler) -> Handler:
    """Give a ``/tasks/{task_id}...`` view the id its request names, read from the raw
    path (:func:`yadtq_app.ids.unquote_id`): aiohttp's ``match_info`` leaves a
    segment that is not UTF-8 undecoded, so ``%ff`` and ``%25ff`` would name one id.
    A path that names no valid id is a 400 (``bad-id``)."""

    @wraps(fun)
    async def handler(view: View, request: Request, **kwargs: Any) -> Response:
        try:
            kwargs["task_id"] = unquote_id(request.rel_url.raw_path.split("/")[2])
        except ValueError as exc:
            return error(view, str(exc), 400, reason="bad-id")
        return await fun(view, request, **kwargs)

    return handler


def routed(table: Any, *, key_arg: Optional[str] = None,
           exact_key: Optional[str] = None) -> Callable[[Handler], Handler]:
    """Answer from the worker that holds ``table``'s partition for the request's key
    (``exact_key``, or the handler's keyword argument ``key_arg``).

    Like Faust's ``table_route``, plus: a worker only answers locally when it holds
    the partition as active and is not recovering (else 503), a routed request is
    never routed again, and an unreachable owner is a 503, not a 500.
    """
    table = getattr(table, "table", table)  # a windowed table's underlying table
    topic = table.changelog_topic.get_topic_name()

    def decorate(fun: Handler) -> Handler:
        @wraps(fun)
        async def handler(view: View, request: Request, **kwargs: Any) -> Response:
            key = exact_key if exact_key is not None else kwargs[key_arg or ""]
            try:
                tp, owner = await _locate(topic, table.changelog_topic.prepare_key(key, None)[0])
            except _Unroutable as exc:
                return error(view, str(exc), 503)
            if owner == str(app.conf.canonical_url) or request.headers.get(ROUTED_HEADER):
                if not _answers_locally(tp):
                    return error(view, "this worker is rebalancing; retry", 503)
                return await fun(view, request, **kwargs)
            return await _forward(view, request, owner)

        return handler

    return decorate


class _Unroutable(Exception):
    """No owner can be named for a key right now (the message says why; a 503)."""


async def _locate(topic: str, key: bytes) -> tuple[TP, str]:
    """The partition of ``key`` in ``topic`` and the URL of the worker that owns it."""
    try:
        tp = TP(topic, await _partition_of(topic, key))
    except KeyError:
        raise _Unroutable("the cluster is rebalancing; retry") from None
    owner = app.assignor._tps_url.get(tp)
    if owner is None:
        raise _Unroutable("no worker holds this partition right now; retry")
    return tp, owner


def _answers_locally(tp: TP) -> bool:
    """This worker holds ``tp`` as active and its tables are complete."""
    return bool(app.assignor.is_active(tp)) and not app.rebalancing and not app.in_recovery


async def _partition_of(topic: str, key: bytes) -> int:
    try:
        return app.producer.key_partition(topic, key).partition  # type: ignore[attr-defined,no-any-return]
    except (TypeError, AttributeError):
        # The producer has no metadata for the topic yet (it never produced to it).
        await app.warm_metadata(topic)
        return app.producer.key_partition(topic, key).partition  # type: ignore[attr-defined,no-any-return]


async def _forward(view: View, request: Request, owner: str) -> Response:
    """The owner's answer to ``request``, sent on with its raw path and query (decoded,
    ``%3F`` in an id would become a query, ``%2E%2E`` a step up)."""
    url = URL(f"{owner.rstrip('/')}{request.rel_url.raw_path}", encoded=True)
    if request.rel_url.raw_query_string:
        url = URL(f"{url}?{request.rel_url.raw_query_string}", encoded=True)
    headers = {ROUTED_HEADER: "1", "Accept": "application/json"}
    body = await request.read() if request.method == "POST" else None
    try:
        try:
            wait = _wait_seconds(request) or 0.0
        except ValueError:
            wait = 0.0
        # A long poll is held by the owner for up to ``wait`` s: on its own pool, so
        # hundreds of them never hold up other forwarded requests.
        http = app.long_poll_http if wait else app.http_client
        async with http.request(request.method, url, headers=headers, data=body,
                                timeout=aiohttp.ClientTimeout(total=10 + wait)) as resp:
            body = await resp.read()
            out = view.bytes(body, content_type="application/json", status=resp.status)
            if "Retry-After" in resp.headers:
                out.headers["Retry-After"] = resp.headers["Retry-After"]
            return out
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        logger.warning("could not reach %s for %s: %s", owner, request.url.path, exc)
        return error(view, f"the worker holding this task ({owner}) did not answer; retry", 503)


class _Refused(Exception):
    """A submission refused: the HTTP status and the JSON fields of its error answer."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra

    def answer(self, view: View) -> Response:
        return error(view, self.message, self.status, **self.extra)

    def item(self) -> dict[str, Any]:
        """The refusal as one item of a bulk answer."""
        return {"error": self.message, "code": self.status, **self.extra}


@dataclass
class _Accepted:
    """A submission checked and ready to hand to the producer."""

    request: TaskRequest
    status: str  # queued or scheduled
    explicit_id: bool  # the submitter chose the id: look for an existing task first
    value: bytes  # the task message, encoded once


def _check_submission(body: Any, now: float) -> _Accepted:
    """Check one submission as ``POST /tasks`` does: the wire format, a task every alive
    worker registers, arguments that fit its signature, the size limit. Raises
    :class:`_Refused`."""
    if isinstance(body, dict) and (body.get("attempt") is not None or body.get("sequenced") is not None):
        raise _Refused(400, "'attempt' and 'sequenced' are set by yadtq itself, not by submitters",
                       reason="bad-field")
    submitted = body
    if isinstance(body, dict):
        body = {**body, "submitted_at": now}  # the server's clock; a countdown counts from now
    try:
        req = task_request_from_json(body)
    except InvalidTask as exc:
        raise _Refused(400, str(exc), reason=exc.reason) from None
    # The published contract (the wire format's own checks above name faults more precisely).
    wrong = problem("TaskSubmission", submitted)
    if wrong is not None:
        raise _Refused(400, wrong[0], reason=wrong[1])
    _check_everywhere(req.task)
    try:
        # The worker that accepts a task has its signature: bad arguments are a 400
        # now, not a task that fails later.
        app.registry.get(req.task).check_arguments(req.task_args, req.task_kwargs)
    except TypeError as exc:
        raise _Refused(400, f"{req.task}: {exc}", reason="bad-arguments") from None
    value = req.encode()
    if len(value) > settings.max_message_bytes:
        raise _Refused(413, f"task message exceeds {settings.max_message_bytes} bytes", reason="too-large")
    waiting = req.eta is not None and req.eta > now
    return _Accepted(req, SCHEDULED if waiting else QUEUED,
                     explicit_id=isinstance(body, dict) and ("task-id" in body or "task_id" in body), value=value)


def _hand_over(accepted: _Accepted, now: float) -> list[Any]:
    """Hand a checked task's records (its message and its ``queued`` event) to the
    producer; the sends, to await with :func:`_confirmed`."""
    req = accepted.request
    queued = TaskEvent(id=req.id, kind=QUEUED, task=req.task, task_args=req.task_args,
                       task_kwargs=req.task_kwargs, at=now, submitted_at=req.submitted_at,
                       options=req.options, next_run_at=req.eta if accepted.status == SCHEDULED else None)
    if req.ordering_key is not None:
        message = SequencerMessage(kind=ENQUEUE, key=req.ordering_key, task_id=req.id, wire=req.to_wire())
        sending = sequencer_topic.send(key=req.ordering_key.encode(), value=message)
    else:
        sending = task_topic.send(key=req.key, value=accepted.value)
    return [sending, events_topic.send(key=req.key, value=queued)]


async def _send_confirmed(accepted: list[_Accepted], now: float) -> Optional[_Refused]:
    """Hand ``accepted`` to the producer in one go (so their records travel in as few
    produce requests as possible) and wait until the brokers have every one; a 503
    refusal if they do not confirm within ``YADTQ_SUBMIT_TIMEOUT``."""
    sends = [send for a in accepted for send in _hand_over(a, now)]
    try:
        await asyncio.wait_for(_confirmed(*sends), settings.submit_timeout)
    except (asyncio.TimeoutError, KafkaError, ProducerSendError) as exc:
        first = accepted[0].request
        why = await unconfirmed_reason(app, task_topic.get_topic_name(), first.key, exc)
        logger.warning("%d task(s) from %s on: the brokers did not confirm the submission: %s", len(accepted),
                       first.id, why)
        return _Refused(503, f"the brokers did not confirm the task within {settings.submit_timeout:g} s "
                        f"({why}); it may still be written: submit it again with the same task-id, which "
                        "never runs twice", reason="not-confirmed")
    return None


@app.page("/tasks")
class TasksView(View):
    """``POST /tasks``: submit a task (a JSON object), or up to :data:`MAX_BULK` tasks
    (a JSON list of them, each checked as a single submission)."""

    async def post(self, request: Request) -> Response:
        raw = await request.read()
        if len(raw) > settings.max_message_bytes:
            return error(self, f"request body exceeds {settings.max_message_bytes} bytes", 413, reason="too-large")
        if not raw:
            return error(self, "request body must be a JSON object with a 'task' field", 400, reason="empty")
        try:
            body = parse_json(raw, max_depth=settings.max_nesting, what="request body")
        except InvalidTask as exc:
            return error(self, str(exc), 400, reason=exc.reason)
        if isinstance(body, list):
            return await self._bulk(body)
        now = time.time()
        try:
            accepted = _check_submission(body, now)
        except _Refused as refused:
            return refused.answer(self)
        req = accepted.request
        if accepted.explicit_id:
            existing = await _existing(req.id)
            if existing is not None:
                return self.json({"task-id": req.id, "status": existing.get("status"), "duplicate": True},
                                 status=200)
        refused = await _send_confirmed([accepted], now)
        if refused is not None:
            refused.extra["task-id"] = req.id
            return refused.answer(self)
        return self.json({"task-id": req.id, "status": accepted.status}, status=202)

    async def _bulk(self, bodies: list[Any]) -> Response:
        """``200 {"tasks": [...]}``, one item per submission, in order: ``{"task-id",
        "status"}`` (``"duplicate": true`` for an id that exists, or that an earlier item
        of the request used), or ``{"error", "reason", "code"}``; 400 (503 if every
        refusal was the brokers') with the same items if none was accepted."""
        if not bodies:
            return error(self, "a bulk submission needs at least one task", 400, reason="empty")
        if len(bodies) > MAX_BULK:
            return error(self, f"at most {MAX_BULK} tasks per request, got {len(bodies)}", 400, reason="too-many")
        now = time.time()
        items: list[Optional[dict[str, Any]]] = [None] * len(bodies)
        checked: dict[int, _Accepted] = {}
        first_of: dict[str, int] = {}
        again: dict[int, str] = {}  # items whose id an earlier item used
        for i, body in enumerate(bodies):
            try:
                accepted = _check_submission(body, now)
            except _Refused as refused:
                items[i] = refused.item()
                continue
            task_id = accepted.request.id
            if task_id in first_of:
                again[i] = task_id  # answered below, like the item that used the id first
                continue
            first_of[task_id] = i
            checked[i] = accepted
        explicit = [a.request.id for a in checked.values() if a.explicit_id]
        existing, unavailable = await _statuses(explicit, routed=False) if explicit else ({}, [])
        fresh = []
        for i, accepted in checked.items():
            task_id = accepted.request.id
            row = existing.get(task_id)
            if row is not None:
                items[i] = {"task-id": task_id, "status": row.get("status"), "duplicate": True}
            elif task_id in unavailable:
                items[i] = {"task-id": task_id, "error": "the worker holding this id is rebalancing; submit it again",
                            "reason": "unavailable", "code": 503}
            else:
                fresh.append(i)
        refused = await _send_confirmed([checked[i] for i in fresh], now) if fresh else None
        for i in fresh:
            task_id = checked[i].request.id
            items[i] = {"task-id": task_id, **refused.item()} if refused is not None \
                else {"task-id": task_id, "status": checked[i].status}
        for i, task_id in again.items():
            first = items[first_of[task_id]] or {}
            items[i] = {**first, "duplicate": True} if "error" not in first else dict(first)
        codes = [item["code"] for item in items if item is not None and "error" in item]
        if len(codes) == len(items):  # nothing accepted: the request as a whole failed
            status = 400 if any(code < 500 for code in codes) else 503
            return error(self, "no task of the request was accepted", status, reason="all-refused", tasks=items)
        return self.json({"tasks": items})


async def _confirmed(*sends: Any) -> None:
    """Wait until the broker has every record handed over by ``sends``."""
    await asyncio.gather(*await asyncio.gather(*sends))


def _check_everywhere(name: str) -> None:
    """Refuse (400) a task that not every alive worker registers: its messages would
    fail as ``unknown task`` on the workers without it."""
    peers = app.peer_tasks
    if not peers.anywhere(name):
        known = sorted(app.registry.names())
        raise _Refused(400, f"unknown task {name!r}: no alive worker registers it; this one registers "
                       f"{', '.join(known) or 'none'}", reason="unknown-task")
    lacking = peers.lacking(name)
    if lacking:
        raise _Refused(400, f"task {name!r} is registered on some workers only: {', '.join(lacking)} "
                       "lack it (every worker must load the same YADTQ_TASK_MODULES)",
                       reason="not-on-every-worker", workers_without=lacking)


async def _existing(task_id: str) -> Optional[dict[str, Any]]:
    """The status row of ``task_id`` as its owner has it; ``None`` if none or unknown."""
    try:
        tp, owner = await _locate(task_status.changelog_topic.get_topic_name(), task_id.encode())
    except (_Unroutable, TypeError, AttributeError):
        return None
    if owner == str(app.conf.canonical_url):
        if not _answers_locally(tp):
            return None
        state = get_status(task_id)
        return state.to_json() if state is not None else None
    url = URL(f"{owner.rstrip('/')}/tasks/{quote_id(task_id)}", encoded=True)
    try:
        async with app.http_client.get(url, headers={ROUTED_HEADER: "1"},
                                       timeout=aiohttp.ClientTimeout(total=5)) as resp:
            if resp.status != 200:
                return None
            return await resp.json()  # type: ignore[no-any-return]
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return None


def _wait_seconds(request: Request) -> Optional[float]:
    """``?wait=S`` as seconds; ``None`` if absent; ValueError if not a number in (0, MAX_WAIT]."""
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


@app.page("/tasks/{task_id}")
class TaskView(View):
    """``GET /tasks/{id}``: the status row, from the worker that owns it; with
    ``?wait=S``, once the task is final (a long poll: the owner answers when it writes
    the final row, so a client learns of it at once without asking again and again)."""

    @path_task_id
    async def get(self, request: Request, task_id: str) -> Response:
        try:
            wait = _wait_seconds(request)
        except ValueError as exc:
            return error(self, str(exc), 400, reason="bad-field")
        return await self._get(request, task_id=task_id, wait=wait)

    @routed(task_status, key_arg="task_id")
    async def _get(self, request: Request, *, task_id: str, wait: Optional[float]) -> Response:
        state = get_status(task_id)
        if wait is not None and (state is None or state.status not in TERMINAL):
            await app.finish_waiters.wait(task_id, wait)
            if app.rebalancing or app.revoking or app.in_recovery:
                return error(self, "this worker is rebalancing; retry", 503)
            state = get_status(task_id)
        if state is None:
            found = await _recorded_status(self, task_id)
            if not isinstance(found, TaskState):
                return found
            state = found
        return self.json(with_effective_options(state.to_json()))


def with_effective_options(row: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """``row`` with the ``max_retries`` and ``timeout`` in force where the submission set
    none: the task's own, else the worker's defaults (``null`` only for a task this
    worker does not register)."""
    if row is None or (row.get("max_retries") is not None and row.get("timeout") is not None):
        return row
    name = row.get("task")
    if not isinstance(name, str) or name not in app.registry:
        return row
    options = describe_task(app.registry.get(name), settings)
    for key in ("max_retries", "timeout"):
        if row.get(key) is None:
            row[key] = options[key]
    return row


async def _recorded_status(view: View, task_id: str) -> Union[TaskState, Response]:
    """The row of a task this worker (the owner) has none of yet, once every event
    written for its partition before now is folded: a task accepted a moment ago has
    its ``queued`` event on the way (``agents.status.caught_up_now``). Else the answer:
    404, or 503 when that cannot be known now (a rebalance)."""
    partition = await _partition_of(task_status.changelog_topic.get_topic_name(), task_id.encode())
    if not await caught_up_now(partition):
        return error(view, "this worker is rebalancing; retry", 503)
    state = get_status(task_id)
    return state if state is not None else error(view, f"no task with id {task_id!r}", 404)


@app.page("/tasks/status")
class TaskStatusesView(View):
    """``POST /tasks/status``: the status rows of many tasks, each from its owner."""

    async def post(self, request: Request) -> Response:
        try:
            body = parse_json(await request.read() or b"null", max_depth=settings.max_nesting, what="request body")
        except InvalidTask as exc:
            return error(self, str(exc), 400, reason=exc.reason)
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
            return error(self, "request body must be {\"ids\": [task id, ...]}", 400, reason="bad-field")
        if len(ids) > MAX_BATCH_IDS:
            return error(self, f"at most {MAX_BATCH_IDS} ids per request, got {len(ids)}", 400, reason="too-many")
        bad = next((p for p in map(id_problem, ids) if p is not None), None)
        if bad is not None:
            return error(self, f"every id must be a task id: {bad}", 400, reason="bad-field")
        wrong = problem("StatusRequest", body)  # the published contract
        if wrong is not None:
            return error(self, wrong[0], 400, reason=wrong[1])
        tasks, unavailable = await _statuses(list(dict.fromkeys(ids)), routed=bool(request.headers.get(ROUTED_HEADER)))
        return self.json({"tasks": tasks, "unavailable": unavailable})


async def _statuses(ids: list[str], *, routed: bool) -> tuple[dict[str, Any], list[str]]:
    """Rows for ``ids``: answered here where this worker owns them, the rest asked of
    their owners, one request per owner, concurrently."""
    topic = task_status.changelog_topic.get_topic_name()
    me = str(app.conf.canonical_url)
    tasks: dict[str, Any] = {}
    unavailable: list[str] = []
    elsewhere: dict[str, list[str]] = {}
    missing: dict[int, list[str]] = {}  # partition → ids with no row here
    for task_id in ids:
        try:
            tp, owner = await _locate(topic, task_id.encode())
        except _Unroutable:
            unavailable.append(task_id)
            continue
        if owner == me or routed:
            if _answers_locally(tp):
                tasks[task_id] = row = with_effective_options(get_status_json(task_id))
                if row is None:
                    missing.setdefault(tp.partition, []).append(task_id)
            else:
                unavailable.append(task_id)
        else:
            elsewhere.setdefault(owner, []).append(task_id)
    # Rows not here yet: once what was written for their partitions before now is folded,
    # they are here or do not exist (see _recorded_status).
    partitions = list(missing)
    for partition, known in zip(partitions, await asyncio.gather(*(caught_up_now(p) for p in partitions))):
        for task_id in missing[partition]:
            if known:
                tasks[task_id] = with_effective_options(get_status_json(task_id))
            else:
                del tasks[task_id]
                unavailable.append(task_id)
    for got, missed in await asyncio.gather(*(_ask_owner(o, i) for o, i in elsewhere.items())):
        tasks.update(got)
        unavailable.extend(missed)
    return tasks, unavailable


async def _ask_owner(owner: str, ids: list[str]) -> tuple[dict[str, Any], list[str]]:
    url = f"{owner.rstrip('/')}/tasks/status"
    try:
        async with app.http_client.post(url, json={"ids": ids}, headers={ROUTED_HEADER: "1"},
                                        timeout=aiohttp.ClientTimeout(total=10)) as resp:
            if resp.status != 200:
                return {}, ids
            data = await resp.json()
            return data["tasks"], data["unavailable"]
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError, TypeError) as exc:
        logger.warning("could not reach %s for %d statuses: %s", owner, len(ids), exc)
        return {}, ids


async def _request_change(view: View, task_id: str, kind: str, allowed: Any, verb: str) -> Response:
    state: Optional[TaskState] = get_status(task_id)
    if state is None:
        found = await _recorded_status(view, task_id)
        if not isinstance(found, TaskState):
            return found
        state = found
    if state.status not in allowed:
        return error(view, f"cannot {verb} task {task_id!r}: it is {state.status}", 409, task_status=state.status)
    event = TaskEvent(id=task_id, kind=kind, task=state.task, at=time.time(), worker=settings.worker_id)
    await (await events_topic.send(key=task_id.encode(), value=event))
    return view.json({"task-id": task_id, "status": state.status, "requested": verb}, status=202)


@app.page("/tasks/{task_id}/cancel")
class CancelView(View):
    """``POST /tasks/{id}/cancel``: a waiting task never starts; a running one is cancelled."""

    @path_task_id
    @routed(task_status, key_arg="task_id")
    async def post(self, request: Request, task_id: str) -> Response:
        return await _request_change(self, task_id, CANCEL, set(STATUSES_NOT_FINISHED), "cancel")


@app.page("/tasks/{task_id}/retry")
class RetryView(View):
    """``POST /tasks/{id}/retry``: run a failed or cancelled task again (a fresh retry budget)."""

    @path_task_id
    @routed(task_status, key_arg="task_id")
    async def post(self, request: Request, task_id: str) -> Response:
        return await _request_change(self, task_id, REQUEUE, {FAILED, CANCELLED}, "retry")


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


@app.timer(interval=settings.heartbeat_interval, name="yadtq.refresh_peer_tasks")
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
            return error(self, "limit must be a positive integer", 400, reason="bad-field")
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
    and what its consumer fetches (:func:`yadtq_app.compat.fetch_state`)."""

    async def get(self, request: Request) -> Response:
        crashed = crash_reason(app)
        if crashed is not None:  # about to exit (yadtq_app.liveness): never "ok" while dead
            return self.json({"error": f"this worker cannot work: {crashed}", "status": "crashed"}, status=503,
                             headers={"Retry-After": "1"})
        watch = app.broker_watch
        if watch is not None and watch.unreachable_for() > 0:
            return error(self, f"the broker has not answered for {watch.unreachable_for():.0f} s", 503,
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


@app.task
async def _warm_router_metadata() -> None:
    """Load producer metadata for the table topics so the first routed read works."""
    for table in (task_status, workers.table, dead_letters):
        try:
            await app.warm_metadata(table.changelog_topic.get_topic_name())
        except Exception:  # noqa: BLE001 - routing retries on demand
            logger.warning("could not load metadata for %s", table.changelog_topic.get_topic_name())
