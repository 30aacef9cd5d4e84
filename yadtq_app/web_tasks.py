"""HTTP views on submitted tasks: read one (``GET /tasks/{id}``, with ``?wait=S`` a
long poll), read many (``POST /tasks/status``), cancel and retry. Each is answered by
the worker that owns the task's row (:mod:`yadtq_app.routing`; ``docs/http.md``)."""

from __future__ import annotations

import time
from functools import wraps
from typing import Any, Awaitable, Callable, Collection, Optional

from faust.web import Request, Response, View

from yadtq_app.api_schema import MAX_BATCH_IDS, problem
from yadtq_app.application import app, settings
from yadtq_app.errors import InvalidTask, Refused
from yadtq_app.ids import id_problem, unquote_id
from yadtq_app.peers import ROUTED_HEADER, ROWS_ONLY_HEADER
from yadtq_app.records import (
    CANCEL,
    CANCELLED,
    FAILED,
    REQUEUE,
    STATUSES,
    TERMINAL,
    TaskEvent,
)
from yadtq_app.routing import REBALANCING, routed, wait_seconds
from yadtq_app.status_reads import recorded_status, statuses, with_effective_options
from yadtq_app.tables.task_status import get_status, task_status
from yadtq_app.topics import events_topic
from yadtq_app.wire import parse_json

__all__ = ["TaskView", "TaskStatusesView", "CancelView", "RetryView", "path_task_id"]

Handler = Callable[..., Awaitable[Response]]
STATUSES_NOT_FINISHED = frozenset(STATUSES) - TERMINAL


def path_task_id(fun: Handler) -> Handler:
    """Give a ``/tasks/{task_id}...`` view the id its request names, read from the raw
    path (:func:`yadtq_app.ids.unquote_id`). Raises :class:`~yadtq_app.errors.Refused`
    (400, ``bad-id``) for a path that names no valid id."""

    @wraps(fun)
    async def handler(view: View, request: Request, **kwargs: Any) -> Response:
        try:
            kwargs["task_id"] = unquote_id(request.rel_url.raw_path.split("/")[2])
        except ValueError as exc:
            raise Refused(400, str(exc), reason="bad-id") from None
        return await fun(view, request, **kwargs)

    return handler


@app.page("/tasks/{task_id}")
class TaskView(View):
    """``GET /tasks/{id}``: the status row, from the worker that owns it; with
    ``?wait=S``, once the task is final or after ``S`` seconds."""

    @path_task_id
    async def get(self, request: Request, task_id: str) -> Response:
        try:
            wait = wait_seconds(request)
        except ValueError as exc:
            raise Refused(400, str(exc), reason="bad-field") from None
        return await self._get(request, task_id=task_id, wait=wait)

    @routed(task_status, key_arg="task_id")
    async def _get(self, request: Request, *, task_id: str, wait: Optional[float]) -> Response:
        state = get_status(task_id)
        if wait is not None and (state is None or state.status not in TERMINAL):
            await app.finish_waiters.wait(task_id, wait)
            if app.rebalancing or app.revoking or app.in_recovery:
                raise Refused(503, REBALANCING)
            state = get_status(task_id)
        if state is None:
            state = await recorded_status(task_id)
        return self.json(with_effective_options(state.to_json()))


@app.page("/tasks/status")
class TaskStatusesView(View):
    """``POST /tasks/status``: the status rows of many tasks, each from its owner."""

    async def post(self, request: Request) -> Response:
        try:
            body = parse_json(await request.read() or b"null", max_depth=settings.max_nesting, what="request body")
        except InvalidTask as exc:
            raise Refused(400, str(exc), reason=exc.reason) from None
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
            raise Refused(400, "request body must be {\"ids\": [task id, ...]}", reason="bad-field")
        if len(ids) > MAX_BATCH_IDS:
            raise Refused(400, f"at most {MAX_BATCH_IDS} ids per request, got {len(ids)}", reason="too-many")
        bad = next((p for p in map(id_problem, ids) if p is not None), None)
        if bad is not None:
            raise Refused(400, f"every id must be a task id: {bad}", reason="bad-field")
        # The published contract, for the rest of the body: every id was just checked as
        # strictly as its schema does, which took jsonschema 5 ms for 1,000.
        wrong = problem("StatusRequest", {**body, "ids": ids[:1]})
        if wrong is not None:
            raise Refused(400, wrong[0], reason=wrong[1])
        routed_here = bool(request.headers.get(ROUTED_HEADER))
        tasks, unavailable = await statuses(list(dict.fromkeys(ids)), routed=routed_here,
                                            unread=not (routed_here and request.headers.get(ROWS_ONLY_HEADER)))
        return self.json({"tasks": tasks, "unavailable": unavailable})


async def _request_change(view: View, task_id: str, kind: str, allowed: Collection[str], verb: str) -> Response:
    """Send a ``kind`` event for ``task_id`` if its status is in ``allowed``: 202. Raises
    :class:`~yadtq_app.errors.Refused`: 409 if it is not, 404/503 as
    :func:`~yadtq_app.status_reads.recorded_status`."""
    state = get_status(task_id)
    if state is None:
        state = await recorded_status(task_id)
    if state.status not in allowed:
        raise Refused(409, f"cannot {verb} task {task_id!r}: it is {state.status}", task_status=state.status)
    event = TaskEvent(id=task_id, kind=kind, task=state.task, at=time.time(), worker=settings.worker_id,
                      generation=state.generation)
    await (await events_topic.send(key=task_id.encode(), value=event))
    return view.json({"task-id": task_id, "status": state.status, "requested": verb}, status=202)


@app.page("/tasks/{task_id}/cancel")
class CancelView(View):
    """``POST /tasks/{id}/cancel``: a waiting task never starts; a running one is cancelled."""

    @path_task_id
    @routed(task_status, key_arg="task_id")
    async def post(self, request: Request, task_id: str) -> Response:
        return await _request_change(self, task_id, CANCEL, STATUSES_NOT_FINISHED, "cancel")


@app.page("/tasks/{task_id}/retry")
class RetryView(View):
    """``POST /tasks/{id}/retry``: run a failed or cancelled task again (a fresh retry budget)."""

    @path_task_id
    @routed(task_status, key_arg="task_id")
    async def post(self, request: Request, task_id: str) -> Response:
        return await _request_change(self, task_id, REQUEUE, {FAILED, CANCELLED}, "retry")
