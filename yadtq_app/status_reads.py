"""Reading task status rows for the HTTP API: here when this worker owns them, else
from their owners; a row not found waits for the catch-up first, then is looked for
among the task topic's unread messages (``docs/http.md``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Optional

import aiohttp
from faust.types import TP
from yarl import URL

from yadtq_app.application import app, settings
from yadtq_app.backlog import BacklogUnreadable, may_be_unread
from yadtq_app.catch_up import caught_up_now
from yadtq_app.errors import Refused
from yadtq_app.ids import quote_id
from yadtq_app.kafka.commits import committed_offset
from yadtq_app.peers import ROUTED_HEADER, ROWS_ONLY_HEADER
from yadtq_app.records import TaskEvent, TaskState
from yadtq_app.registry import effective_options
from yadtq_app.routing import (
    REBALANCING,
    Unroutable,
    answers_locally,
    is_local,
    local_url,
    locate,
    locate_many,
    partition_of,
)
from yadtq_app.state import apply_event
from yadtq_app.tables.task_status import get_status, get_status_json, task_status

__all__ = ["with_effective_options", "recorded_status", "unread_rows", "statuses", "existing"]


async def _keep_assigned(*args: Any, **kwargs: Any) -> None:
    assigned: Any = args[1]  # (sender, assigned): the partitions assigned here now
    app.backlog.forget(tp.partition for tp in assigned if tp.topic == app.backlog.topic)


app.on_partitions_assigned.connect(_keep_assigned)


def with_effective_options(row: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """``row`` with the ``max_retries`` and ``timeout`` in force where the submission set
    none: the task's own, else the worker's defaults (``null`` only for a task this
    worker does not register)."""
    if row is None or (row.get("max_retries") is not None and row.get("timeout") is not None):
        return row
    name = row.get("task")
    if not isinstance(name, str) or name not in app.registry:
        return row
    options = effective_options(app.registry.get(name), settings)
    for key in ("max_retries", "timeout"):
        if row.get(key) is None:
            row[key] = options[key]
    return row


async def recorded_status(task_id: str) -> TaskState:
    """The row of a task this worker (the owner) has none of yet, once every event
    written for its partition before now is folded. Raises
    :class:`~yadtq_app.errors.Refused`: 404 if there is none, 503 if that cannot be
    known now (a rebalance)."""
    partition = await partition_of(task_status.changelog_topic.get_topic_name(), task_id.encode())
    if not await caught_up_now(partition):
        raise Refused(503, REBALANCING)
    state: Optional[TaskState] = get_status(task_id)
    if state is None:
        state = (await unread_rows(partition, [task_id])).get(task_id)
    if state is None:
        raise Refused(404, f"no task with id {task_id!r}")
    return state


async def unread_rows(partition: int, ids: list[str]) -> dict[str, TaskState]:
    """The rows ``ids`` have while their task messages wait unread in ``partition`` of
    the task topic (:mod:`yadtq_app.backlog`), or read and waiting for a free slot
    here (:meth:`~yadtq_app.running.RunningTasks.waiting`): ``queued``, or
    ``scheduled`` for a later eta, for those that do. Raises :class:`~yadtq_app.errors.Refused` (503) if
    that cannot be told now."""
    tp = TP(settings.task_topic, partition)
    found = {task_id: request for task_id in ids if (request := app.running.waiting(task_id)) is not None}
    absent = [task_id for task_id in ids if task_id not in found]
    if absent and may_be_unread(app.consumer, tp):
        try:
            found.update(await app.backlog.find(partition, absent, committed_offset(app.consumer, tp) or 0))
        except BacklogUnreadable as exc:
            raise Refused(503, f"cannot tell whether the task topic's unread messages hold it: {exc}",
                          reason="backlog-unreadable") from None
    now = time.time()
    return {task_id: apply_event(None, TaskEvent.queued(req, now)) for task_id, req in found.items()}


def _read_local(ids: list[str], where: Callable[[bytes], tuple[TP, Optional[str]]], routed: bool
                ) -> tuple[dict[str, Any], list[str], dict[str, list[str]], dict[int, list[str]]]:
    """The rows of ``ids`` held here (or all, if ``routed``), the ids that cannot be
    answered now, the others by owner, and the ids with no row here by partition."""
    tasks: dict[str, Any] = {}
    unavailable: list[str] = []
    elsewhere: dict[str, list[str]] = {}
    missing: dict[int, list[str]] = {}
    here = local_url()
    for task_id in ids:
        tp, owner = where(task_id.encode())
        if owner is None:
            unavailable.append(task_id)
        elif owner != here and not routed:
            elsewhere.setdefault(owner, []).append(task_id)
        elif answers_locally(tp):
            tasks[task_id] = row = with_effective_options(get_status_json(task_id))
            if row is None:
                missing.setdefault(tp.partition, []).append(task_id)
        else:
            unavailable.append(task_id)
    return tasks, unavailable, elsewhere, missing


async def statuses(ids: list[str], *, routed: bool, unread: bool = True) -> tuple[dict[str, Any], list[str]]:
    """Rows for ``ids`` (``None`` for no such task) and the ids that cannot be answered
    now: answered here where this worker owns them (or ``routed``: the request was
    routed here), the rest asked of their owners, one request per owner, concurrently.
    With ``unread``, an id with no row is looked for among the task topic's unread
    messages (:func:`unread_rows`)."""
    try:
        where = await locate_many(task_status.changelog_topic.get_topic_name())
    except Unroutable:
        return {}, list(ids)
    tasks, unavailable, elsewhere, missing = _read_local(ids, where, routed)
    # Rows not here yet: once their partitions are caught up, they are here or do not exist.
    partitions = list(missing)
    for partition, known in zip(partitions, await asyncio.gather(*(caught_up_now(p) for p in partitions))):
        waiting: dict[str, TaskState] = {}
        if known and unread:
            absent = [t for t in missing[partition] if get_status_json(t) is None]
            try:
                waiting = await unread_rows(partition, absent) if absent else {}
            except Refused:
                known = False
        for task_id in missing[partition]:
            if known:
                row = waiting.get(task_id)
                tasks[task_id] = with_effective_options(row.to_json() if row is not None else get_status_json(task_id))
            else:
                del tasks[task_id]
                unavailable.append(task_id)
    for got, missed in await asyncio.gather(*(_ask_owner(o, i, unread) for o, i in elsewhere.items())):
        tasks.update(got)
        unavailable.extend(missed)
    return tasks, unavailable


async def _ask_owner(owner: str, ids: list[str], unread: bool) -> tuple[dict[str, Any], list[str]]:
    """``POST /tasks/status`` to ``owner`` for ``ids``: its rows and the ids it could not answer."""
    url = f"{owner.rstrip('/')}/tasks/status"
    headers = {ROUTED_HEADER: "1", **({} if unread else {ROWS_ONLY_HEADER: "1"})}
    try:
        async with app.http_client.post(url, json={"ids": ids}, headers=headers,
                                        timeout=aiohttp.ClientTimeout(total=10)) as resp:
            app.silent_peers.answered(owner)
            if resp.status != 200:
                return {}, ids
            data = await resp.json()
            return data["tasks"], data["unavailable"]
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError, TypeError) as exc:
        app.silent_peers.failed(owner, f"{len(ids)} statuses", exc)
        return {}, ids


async def existing(task_id: str) -> Optional[dict[str, Any]]:
    """The status row of ``task_id`` as its owner has it; ``None`` if none or unknown."""
    try:
        tp, owner = await locate(task_status.changelog_topic.get_topic_name(), task_id.encode())
    except (Unroutable, TypeError, AttributeError):
        return None
    if is_local(owner):
        if not answers_locally(tp):
            return None
        state = get_status(task_id)
        return state.to_json() if state is not None else None
    url = URL(f"{owner.rstrip('/')}/tasks/{quote_id(task_id)}", encoded=True)
    try:
        async with app.http_client.get(url, headers={ROUTED_HEADER: "1"},
                                       timeout=aiohttp.ClientTimeout(total=5)) as resp:
            if resp.status != 200:
                return None
            return await resp.json()  # type: ignore[no-any-return]  # the owner's JSON row
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return None
