"""Per-key ordering: tasks that share an ``ordering_key`` run one at a time, in the
order they were submitted — across all workers, with retries and crashes.

Opt in per submission: ``{"task": "charge", "args": [...], "ordering_key": "customer-42"}``.
Tasks without one run as before, concurrently.

How: an ordered task does not go to the task topic directly. It goes to the
*sequencer* topic keyed by its ordering key, so every task of one key lands in one
partition, where the ``sequence_ordered`` agent keeps a :class:`KeyQueue` per key in a
changelog-backed table. The sequencer releases one task per key at a time to the task
topic (keyed by its task id as usual, so status routing is unchanged, and marked
``"sequenced": true``); when that task reaches a final status (``success``,
``failed`` after its retries, ``cancelled``), its worker sends ``done`` for the key and
the sequencer releases the next. A retry keeps its key blocked: strict order.

Crash safety: each step is "update the key's row, then (re)send the released task".
A step redelivered after a crash sees a row that already moved and re-sends the
current task instead of losing it; a task message sent twice runs once (the task
agent's one-run-per-id rule), and ``done`` for a task that is not the key's current
one changes nothing. This module is the pure part: :func:`sequence` decides, the
agent (:mod:`agents.ordering`) stores and sends.
"""

from __future__ import annotations

from typing import Any, Optional

import faust

__all__ = ["KeyQueue", "SequencerMessage", "sequence", "ENQUEUE", "DONE", "MAX_QUEUE"]

ENQUEUE = "enqueue"
DONE = "done"
#: Tasks that may wait behind one key (a bound on the row's size).
MAX_QUEUE = 10_000


class SequencerMessage(faust.Record, namespace="yadtq.SequencerMessage", serializer="json"):
    """To the sequencer: ``enqueue`` a task (its wire form) or report it ``done``."""

    kind: str
    key: str
    task_id: str
    wire: Optional[dict[str, Any]] = None


class KeyQueue(faust.Record, namespace="yadtq.KeyQueue", serializer="json"):
    """One ordering key: the task released now (with its wire form) and those waiting."""

    key: str
    current: Optional[str] = None
    current_wire: Optional[dict[str, Any]] = None
    waiting: list[dict[str, Any]] = []  # wire dicts, oldest first


def sequence(row: Optional[KeyQueue], msg: SequencerMessage) -> tuple[Optional[KeyQueue], Optional[dict[str, Any]]]:
    """The key's row after ``msg`` (``None``: nothing left, delete it) and the task
    message to send now, if any (a wire dict)."""
    if row is None:
        row = KeyQueue(key=msg.key)
    else:
        row = KeyQueue(key=row.key, current=row.current, current_wire=row.current_wire, waiting=list(row.waiting))
    if msg.kind == ENQUEUE:
        if msg.wire is None:
            raise ValueError("enqueue needs the task's wire form")
        if row.current == msg.task_id:
            return row, row.current_wire  # redelivered after a crash: send it again
        if any(w.get("task-id") == msg.task_id for w in row.waiting):
            return row, None  # a duplicate submission
        if row.current is None:
            row.current, row.current_wire = msg.task_id, msg.wire
            return row, msg.wire
        if len(row.waiting) >= MAX_QUEUE:
            raise OverflowError(f"ordering key {msg.key!r} has {MAX_QUEUE} tasks waiting")
        row.waiting.append(msg.wire)
        return row, None
    if msg.kind == DONE:
        if row.current != msg.task_id:
            # Stale (already advanced): make sure the current one was sent.
            return (row if row.current is not None or row.waiting else None), row.current_wire
        if not row.waiting:
            return None, None
        nxt = row.waiting.pop(0)
        row.current, row.current_wire = nxt["task-id"], nxt
        return row, nxt
    raise ValueError(f"unknown sequencer message kind {msg.kind!r}")
