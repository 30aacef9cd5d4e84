"""A batch cut short by a stop lets go of its one-message tasks (agents.tasks._let_go)."""

from __future__ import annotations

import asyncio

from yadtq_app.agents.tasks import _let_go
from yadtq_app.application import app
from yadtq_app.wire import task_request_from_json


async def test_a_batch_cut_short_cancels_its_one_message_tasks_and_forgets_them_as_read() -> None:
    request = task_request_from_json({"task-id": "let-go-1", "task": "add", "args": [1, 2]})
    app.running.reading(request)  # prepare() did this; the task's claim would have ended it
    assert app.running.waiting(request.id) is request
    never_started = asyncio.ensure_future(asyncio.sleep(60))
    _let_go([(never_started, request)])
    await asyncio.sleep(0)
    assert never_started.cancelled()
    assert app.running.waiting(request.id) is None  # a status read here no longer answers queued from it
