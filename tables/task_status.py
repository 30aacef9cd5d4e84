"""``task-status``: one :class:`~yadtq_app.records.TaskState` row per task id.

RocksDB-backed and changelog-backed. Keyed by the task id as raw UTF-8 bytes, the
same bytes that key the task and events topics, so a row lives in the partition of
its task message and Faust's router (which hashes the table's serialized key) sends
``GET /tasks/{id}`` to the worker that owns it. Written only through
:func:`agents.status.fold`: by the status agent, and by the task agent for the tasks it
runs (same partition, same process, no await inside a fold).
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Optional

from faust.types import EventT

from yadtq_app.application import app, settings
from yadtq_app.errors import RecordTooLarge
from yadtq_app.fencing import FencedTable
from yadtq_app.kafka.private import store_get
from yadtq_app.records import TaskState
from yadtq_app.state import apply_event, merge_rows

__all__ = ["task_status", "get_status", "get_status_json", "StatusTable"]

logger = logging.getLogger(__name__)


class StatusTable(FencedTable):
    """A table whose changelog recovery merges row versions instead of overwriting.

    See :func:`yadtq_app.state.merge_rows`: a stale row flushed late into the
    changelog by a worker that was frozen must not win when another worker rebuilds
    the table from it.
    """

    def __setitem__(self, key: Any, value: Any) -> None:
        # Faust serializes a written value twice, for the local store and for the
        # changelog record. Serialized once here (the same JSON Faust would write), it
        # passes through both as bytes: a tenth of a busy worker's status-writing cost.
        if isinstance(value, TaskState):
            value = value.dumps()
        if isinstance(value, bytes) and len(value) > settings.record_limit:
            # Refused here, before Faust writes it locally and hands it to the producer,
            # where a send over the limit crashes the producer's buffer and the worker.
            raise RecordTooLarge(f"the status row of task {key!r}", len(value), settings.record_limit)
        super().__setitem__(key, value)

    def apply_changelog_batch(self, batch: Iterable[EventT[Any]]) -> None:
        pending: dict[Optional[bytes], Optional[TaskState]] = {}
        events = list(batch)
        for event in events:
            msg = event.message
            if msg.value is None:
                pending[msg.key] = None
                continue
            try:
                incoming = TaskState.loads(msg.value)
            except Exception:  # noqa: BLE001 - keep Faust's behaviour for what we cannot read
                continue
            current = pending[msg.key] if msg.key in pending else self.get(msg.key)
            merged = merge_rows(current, incoming)
            pending[msg.key] = merged
            if merged is not incoming:
                logger.info("task %s: recovery kept %s/%d over a stale %s/%d row", merged.id, merged.status,
                            merged.attempts, incoming.status, incoming.attempts)
                msg.value = merged.dumps()
        super().apply_changelog_batch(events)


task_status: Any = app.tables.add(StatusTable(
    app,
    name="task-status",
    beacon=app.tables.beacon,
    key_type=bytes,
    value_type=TaskState,
    partitions=settings.partitions,
    help="Status of every task, keyed by task id (raw UTF-8 bytes).",
))


def get_status(task_id: str) -> Optional[TaskState]:
    """The local row for ``task_id`` (``None`` if this worker holds none), including a
    ``queued`` row held back (``yadtq_app.held_submissions``) and an attempt that runs
    here but whose start is not written yet (``agents.reporting.record_start``)."""
    row = task_status.get(task_id.encode())
    if row is None:
        row = app.held.row(task_id)  # a queued row held back from the table for a moment (agents.status)
    start = app.running.unrecorded_start(task_id)
    return apply_event(row, start) if start is not None else row


def get_status_json(task_id: str) -> Optional[dict[str, Any]]:
    """``get_status(task_id).to_json()`` (``None`` if no row), read straight from the
    stored JSON unless a start or a ``queued`` row is held here (then through the record)."""
    if app.running.unrecorded_start(task_id) is not None or task_id in app.held:
        state = get_status(task_id)
        return state.to_json() if state is not None else None
    raw = store_get(task_status.data, task_id.encode())
    return TaskState.json_from_stored(raw) if raw is not None else None
