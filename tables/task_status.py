"""``task-status``: one :class:`~yadtq_app.records.TaskState` row per task id.

RocksDB-backed and changelog-backed. Keyed by the task id as raw UTF-8 bytes, the
same bytes that key the task and events topics, so a row lives in the partition of
its task message and Faust's router (which hashes the table's serialized key) sends
``GET /tasks/{id}`` to the worker that owns it. Written only by
:func:`agents.status.record_status`.
"""

from __future__ import annotations

from typing import Optional

from yadtq_app.application import app, settings
from yadtq_app.records import TaskState

__all__ = ["task_status", "get_status"]

task_status = app.Table(
    "task-status",
    key_type=bytes,
    value_type=TaskState,
    partitions=settings.partitions,
    help="Status of every task, keyed by task id (raw UTF-8 bytes).",
)


def get_status(task_id: str) -> Optional[TaskState]:
    """The local row for ``task_id`` (``None`` if this worker holds none)."""
    return task_status.get(task_id.encode())
