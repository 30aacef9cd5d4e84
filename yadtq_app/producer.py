"""Submit tasks through a Faust producer, for services that already run Faust.

::

    import faust
    from yadtq_app import producer

    app = faust.App("billing", broker="kafka://127.0.0.1:9092")

    @app.timer(60)
    async def nightly():
        await producer.submit(app, "multiply", 4, 5)

The message is the wire format of :mod:`yadtq_app.wire`, exactly what the HTTP API
and any other Kafka client write; the status appears when a worker picks it up.
"""

from __future__ import annotations

import time
from typing import Any, Optional

import faust

from .wire import new_task_id, task_request_from_json

__all__ = ["submit"]


async def submit(app: faust.App, task: str, *args: Any, task_id: Optional[str] = None,
                 topic: str = "task_queue", **kwargs: Any) -> str:
    """Write a task message with ``app``'s producer and wait until the broker has it; its id."""
    request = task_request_from_json({"task-id": task_id or new_task_id(), "task": task, "args": list(args),
                                      "kwargs": kwargs, "submitted_at": time.time()})
    fut = await app.send(topic, key=request.key, value=request.encode(), key_serializer="raw",
                         value_serializer="raw")
    await fut
    return request.id
