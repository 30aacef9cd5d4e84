"""``key-queues``: per ordering key, the task released now and those waiting.

Keyed by the ordering key (raw bytes), co-partitioned with the sequencer topic.
Written only by :func:`agents.ordering.sequence_ordered`; see :mod:`yadtq_app.ordering`.
"""

from __future__ import annotations

from typing import Any

from yadtq_app.application import app, settings
from yadtq_app.ordering import KeyQueue

__all__ = ["key_queues"]

key_queues: Any = app.Table(
    "key-queues",
    key_type=bytes,
    value_type=KeyQueue,
    partitions=settings.partitions,
    help="Ordered tasks per ordering key: the one released now and those waiting.",
)
