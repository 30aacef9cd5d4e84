"""``task-schedule``: the next start of every waiting task, keyed by task id.

A row here exists exactly while the task's status row waits for a time — a countdown
or eta (``scheduled``), a retry's backoff (``retrying``), or a resubmission
(``queued`` by ``POST /tasks/{id}/retry``) — see :func:`yadtq_app.state.schedule_of`.
Written only by :func:`agents.status.fold`, in the same step that writes the
status row, so the two cannot disagree; co-partitioned with the task and events
topics (raw-bytes keys), so the worker that owns a task's status also owns its
schedule and runs it. Read by the scheduler timer in :mod:`agents.schedule`.

Waiting in a table instead of holding the message keeps the partition flowing: a
task that waits an hour blocks nothing behind it, and the wait survives crashes and
rebalances (the table is changelog-backed).
"""

from __future__ import annotations

from typing import Any

from yadtq_app.application import app, settings
from yadtq_app.records import ScheduledRun

__all__ = ["task_schedule"]

task_schedule: Any = app.Table(
    "task-schedule",
    key_type=bytes,
    value_type=ScheduledRun,
    partitions=settings.partitions,
    help="Next start of every waiting task (countdown, eta, retry backoff), keyed by task id.",
)
