"""``POST /tasks``: submitting one task (a JSON object) or many (a JSON list), each
checked as ``POST /tasks`` checks one, then handed to the producer and confirmed by the
brokers before the answer (``docs/http.md``)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Optional, cast

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from faust.exceptions import ProducerSendError
from faust.types import TP
from faust.web import Request, Response, View

from yadtq_app.api_schema import MAX_BULK
from yadtq_app.application import app, settings
from yadtq_app.encoding import partition_of
from yadtq_app.errors import InvalidTask, Refused
from yadtq_app.kafka import private
from yadtq_app.kafka.batches import send_batched
from yadtq_app.kafka.unconfirmed import unconfirmed_reason
from yadtq_app.ordering import ENQUEUE, SequencerMessage
from yadtq_app.records import QUEUED, SCHEDULED, TaskEvent, TaskRequest
from yadtq_app.status_reads import existing, statuses
from yadtq_app.topics import events_topic, sequencer_topic, task_topic
from yadtq_app.wire import parse_json, task_request_from_json

__all__ = ["TasksView", "Accepted", "check_submission", "encode_event"]

logger = logging.getLogger(__name__)

#: How many bytes one record of ``queued`` events may stand for (each event counts as its
#: task message and :data:`EVENT_OVERHEAD` more): a quarter of the broker's usual 1 MiB
#: record limit.
EVENT_BATCH_BYTES = 256 * 1024
EVENT_OVERHEAD = 512


@dataclass
class Accepted:
    """A submission checked and ready to hand to the producer."""

    request: TaskRequest
    status: str  # queued or scheduled
    explicit_id: bool  # the submitter chose the id: look for an existing task first
    value: bytes  # the task message, encoded once
    partition: int  # the task topic's partition for its id (and the events topic's)


def check_submission(body: Any, now: float) -> Accepted:
    """Check one submission: the wire format, a task every alive worker registers,
    arguments that fit its signature, the size limit. Raises
    :class:`~yadtq_app.errors.Refused` (400 or 413)."""
    if isinstance(body, dict) and (body.get("attempt") is not None or body.get("sequenced") is not None):
        raise Refused(400, "'attempt' and 'sequenced' are set by yadtq itself, not by submitters",
                      reason="bad-field")
    if isinstance(body, dict):
        body = {**body, "submitted_at": now}  # the server's clock; a countdown counts from now
    try:
        req = task_request_from_json(body)
    except InvalidTask as exc:
        raise Refused(400, str(exc), reason=exc.reason) from None
    _check_everywhere(req.task)
    try:
        # The accepting worker has the task's signature: bad arguments are a 400 now.
        app.registry.get(req.task).check_arguments(req.task_args, req.task_kwargs)
    except TypeError as exc:
        raise Refused(400, f"{req.task}: {exc}", reason="bad-arguments") from None
    value = req.encode()
    if len(value) > settings.max_message_bytes:
        raise Refused(413, f"task message exceeds {settings.max_message_bytes} bytes", reason="too-large")
    waiting = req.eta is not None and req.eta > now
    return Accepted(req, SCHEDULED if waiting else QUEUED,
                    explicit_id=isinstance(body, dict) and ("task-id" in body or "task_id" in body), value=value,
                    partition=partition_of(req.key, settings.partitions))


def _check_everywhere(name: str) -> None:
    """Raise :class:`~yadtq_app.errors.Refused` (400) for a task that not every alive
    worker registers."""
    peers = app.peer_tasks
    if not peers.anywhere(name):
        known = sorted(app.registry.names())
        raise Refused(400, f"unknown task {name!r}: no alive worker registers it; this one registers "
                      f"{', '.join(known) or 'none'}", reason="unknown-task")
    lacking = peers.lacking(name)
    if lacking:
        raise Refused(400, f"task {name!r} is registered on some workers only: {', '.join(lacking)} "
                      "lack it (every worker must load the same YADTQ_TASK_MODULES)",
                      reason="not-on-every-worker", workers_without=lacking)


def _send_message(accepted: Accepted) -> Any:
    """Hand a checked task's message to the producer (to the sequencer if it has an
    ordering key); the send, to await with :func:`_confirmed`."""
    req = accepted.request
    if req.ordering_key is not None:
        message = SequencerMessage(kind=ENQUEUE, key=req.ordering_key, task_id=req.id, wire=req.to_wire())
        return sequencer_topic.send(key=req.ordering_key.encode(), value=message)
    return _send_record(task_topic.get_topic_name(), req.key, accepted.value, accepted.partition)


async def _send_record(topic: str, key: bytes, value: bytes, partition: int) -> Any:
    """Hand one record to aiokafka's producer itself: Faust's ``Topic.send`` costs a
    record about what running a quick task costs (:mod:`yadtq_app.kafka.batches`). The
    record joins the partition's open batch, as Faust's would. Its delivery future."""
    return await (await _kafka()).send(topic, value=value, key=key, partition=partition)


async def _kafka() -> AIOKafkaProducer:
    """The app's aiokafka producer, started."""
    return private.ensure_producer(await app.maybe_start_producer())


async def _send_batched(accepted: list[Accepted]) -> Any:
    """Hand the task messages of ``accepted`` (none with an ordering key) to the
    producer as whole batches, one per partition (:mod:`yadtq_app.kafka.batches`):
    a bulk submission's records skip Faust's per-record send. The send, to await with
    :func:`_confirmed`."""
    kafka = await _kafka()
    records = [(a.partition, a.request.key, a.value) for a in accepted]
    return asyncio.gather(*await send_batched(kafka, task_topic.get_topic_name(), records))


def _send_events(accepted: list[Accepted], now: float) -> list[Any]:
    """Hand the ``queued`` events of ``accepted`` to the producer: those of one
    partition together, as batches of at most :data:`EVENT_BATCH_BYTES` of task
    messages (one record each for the status agent, encoded as Faust encodes the
    topic's values); the sends."""
    open_chunks: dict[int, tuple[list[Accepted], int]] = {}  # partition → (chunk, its bytes)
    chunks: list[list[Accepted]] = []
    for a in accepted:
        size = len(a.value) + EVENT_OVERHEAD
        chunk, used = open_chunks.get(a.partition, ([], 0))
        if not chunk or used + size > EVENT_BATCH_BYTES:
            chunk, used = [], 0
            chunks.append(chunk)
        chunk.append(a)
        open_chunks[a.partition] = (chunk, used + size)
    sends = []
    topic = events_topic.get_topic_name()
    for chunk in chunks:
        event = TaskEvent.queued(chunk[0].request, now) if len(chunk) == 1 \
            else TaskEvent.batch([TaskEvent.queued_fields(a.request, now) for a in chunk])
        sends.append(_send_record(topic, chunk[0].request.key, encode_event(event), chunk[0].partition))
    return sends


def encode_event(event: TaskEvent) -> bytes:
    """``event`` as the events topic carries it: what Faust's ``Topic.send`` would write."""
    value, _headers = events_topic.prepare_value(event, None)  # Faust's json schema: no headers
    return cast(bytes, value)


async def _confirmed(*sends: Any) -> None:
    """Wait until the broker has every record handed over by ``sends``."""
    await asyncio.gather(*await asyncio.gather(*sends))


async def _send_confirmed(accepted: list[Accepted], now: float) -> Optional[Refused]:
    """Hand ``accepted`` to the producer in one go and wait until the brokers have every
    record, then tell the consumer which task partitions were written
    (:meth:`~yadtq_app.kafka.consumer.Consumer.fetch_written`); a 503 refusal (returned)
    if the brokers do not confirm within ``YADTQ_SUBMIT_TIMEOUT``."""
    plain = [a for a in accepted if a.request.ordering_key is None]
    if len(plain) > 1:
        sends = [_send_batched(plain), *(_send_message(a) for a in accepted if a.request.ordering_key is not None)]
    else:
        sends = [_send_message(a) for a in accepted]
    sends += _send_events(accepted, now)
    try:
        await asyncio.wait_for(_confirmed(*sends), settings.submit_timeout)
    except (asyncio.TimeoutError, KafkaError, ProducerSendError) as exc:
        first = accepted[0].request
        why = await unconfirmed_reason(app, task_topic.get_topic_name(), first.key, exc)
        logger.warning("%d task(s) from %s on: the brokers did not confirm the submission: %s", len(accepted),
                       first.id, why)
        return Refused(503, f"the brokers did not confirm the task within {settings.submit_timeout:g} s "
                       f"({why}); it may still be written: submit it again with the same task-id, which "
                       "never runs twice", reason="not-confirmed")
    topic = task_topic.get_topic_name()
    app.consumer.fetch_written(TP(topic, a.partition) for a in plain)  # type: ignore[attr-defined]  # yadtq's Consumer
    return None


@app.page("/tasks")
class TasksView(View):
    """``POST /tasks``: submit a task (a JSON object): 202, or 200 with the task that
    has its id; or up to :data:`MAX_BULK` tasks (a JSON list): see :func:`_bulk`."""

    async def post(self, request: Request) -> Response:
        raw = await request.read()
        if len(raw) > settings.max_message_bytes:
            raise Refused(413, f"request body exceeds {settings.max_message_bytes} bytes", reason="too-large")
        if not raw:
            raise Refused(400, "request body must be a JSON object with a 'task' field", reason="empty")
        try:
            body = parse_json(raw, max_depth=settings.max_nesting, what="request body")
        except InvalidTask as exc:
            raise Refused(400, str(exc), reason=exc.reason) from None
        if isinstance(body, list):
            return self.json(await _bulk(body))
        now = time.time()
        accepted = check_submission(body, now)
        req = accepted.request
        if accepted.explicit_id:
            found = await existing(req.id)
            if found is not None:
                return self.json({"task-id": req.id, "status": found.get("status"), "duplicate": True}, status=200)
        refused = await _send_confirmed([accepted], now)
        if refused is not None:
            refused.fields["task-id"] = req.id
            raise refused
        return self.json({"task-id": req.id, "status": accepted.status}, status=202)


async def _bulk(bodies: list[Any]) -> dict[str, Any]:
    """``{"tasks": [...]}``, one item per submission, in order: ``{"task-id", "status"}``
    (``"duplicate": true`` for an id that exists, or that an earlier item of the request
    used), or ``{"error", "reason", "code"}``. Raises :class:`~yadtq_app.errors.Refused`:
    400 for no or too many tasks; 400 (503 if every refusal was the brokers') with the
    same items if none was accepted."""
    if not bodies:
        raise Refused(400, "a bulk submission needs at least one task", reason="empty")
    if len(bodies) > MAX_BULK:
        raise Refused(400, f"at most {MAX_BULK} tasks per request, got {len(bodies)}", reason="too-many")
    now = time.time()
    items: list[Optional[dict[str, Any]]] = [None] * len(bodies)
    checked: dict[int, Accepted] = {}
    first_of: dict[str, int] = {}
    again: dict[int, str] = {}  # items whose id an earlier item used
    for i, body in enumerate(bodies):
        try:
            accepted = check_submission(body, now)
        except Refused as exc:
            items[i] = exc.item()
            continue
        task_id = accepted.request.id
        if task_id in first_of:
            again[i] = task_id  # answered below, like the item that used the id first
            continue
        first_of[task_id] = i
        checked[i] = accepted
    fresh = await _answer_known(checked, items)
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
        raise Refused(status, "no task of the request was accepted", reason="all-refused", tasks=items)
    return {"tasks": items}


async def _answer_known(checked: dict[int, Accepted], items: list[Optional[dict[str, Any]]]) -> list[int]:
    """Fill ``items`` for the checked submissions whose chosen id exists (a duplicate) or
    cannot be looked up now (503); the indexes of the others, to send."""
    explicit = [a.request.id for a in checked.values() if a.explicit_id]
    # From the table only, as a single submission's check (yadtq_app.status_reads.existing):
    # looking among the task topic's unread messages made a bulk submission during a
    # backlog 2.5 times as slow.
    found, unavailable = await statuses(explicit, routed=False, unread=False) if explicit else ({}, [])
    fresh = []
    for i, accepted in checked.items():
        task_id = accepted.request.id
        row = found.get(task_id)
        if row is not None:
            items[i] = {"task-id": task_id, "status": row.get("status"), "duplicate": True}
        elif task_id in unavailable:
            items[i] = {"task-id": task_id, "error": "the worker holding this id is rebalancing; submit it again",
                        "reason": "unavailable", "code": 503}
        else:
            fresh.append(i)
    return fresh
