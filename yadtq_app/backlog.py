"""Tasks written to the task topic that no worker has read yet: found, not 404.

A task submitted over HTTP has a ``queued`` row from the moment its submission is
answered. A record written straight to the task topic has none until the worker that
owns its partition reads it, which behind a backlog may be minutes later. Before the
owner answers 404 for an id, :meth:`Backlog.find` looks for it among the partition's
records that may be unread: from the group's committed offset on, when the worker's
consumer has not read up to the partition's end or holds messages not yet acted on.

:class:`Backlog` keeps, per partition, an index of the keys it has read (key → offset),
drops what falls below the committed offset, and reads only what was written since its
last look; a hit is read again from its offset and parsed as the task agent would. It
reads with one consumer of its own, started at its first look and kept (its partition
paused between looks, so it fetches nothing) until :meth:`Backlog.close`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Optional

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from .errors import InvalidTask
from .kafka import private
from .kafka.commits import ReadOffsets, committed_offset
from .records import TaskRequest
from .security import client_options
from .wire import parse_task_message

if TYPE_CHECKING:  # pragma: no cover
    from .settings import Settings

__all__ = ["Backlog", "BacklogUnreadable", "may_be_unread"]

logger = logging.getLogger(__name__)

#: Keys one partition's index may hold; past it, lookups in that partition answer 503.
MAX_INDEXED = 500_000
#: How long one lookup may read (s) before it answers 503 (ask again: it goes on from there).
READ_TIME = 5.0
#: An index read this recently (s) answers without reading: many lookups at once share one read.
FRESH = 0.1


class BacklogUnreadable(Exception):
    """Whether an unread record holds the id cannot be told now (the read timed out,
    or the backlog is deeper than :data:`MAX_INDEXED`)."""


@dataclass
class _Index:
    next_offset: int = 0
    offsets: dict[bytes, int] = field(default_factory=dict)  # key → its latest offset
    order: collections.deque[tuple[int, bytes]] = field(default_factory=collections.deque)
    read_at: float = 0.0

    def drop_below(self, offset: int) -> None:
        """Forget the records before ``offset`` (the task agent has them)."""
        while self.order and self.order[0][0] < offset:
            old, key = self.order.popleft()
            if self.offsets.get(key) == old:
                del self.offsets[key]
        self.next_offset = max(self.next_offset, offset)

    def add(self, key: bytes, offset: int) -> None:
        self.offsets[key] = offset
        self.order.append((offset, key))


class Backlog:
    """Looks up ids among one topic's unread records (one lookup at a time per worker)."""

    def __init__(self, settings: "Settings", topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self._indexes: dict[int, _Index] = {}
        self._lock = asyncio.Lock()
        self._kafka: Optional[AIOKafkaConsumer] = None

    async def find(self, partition: int, task_ids: list[str], start: int) -> dict[str, TaskRequest]:
        """The task messages for ``task_ids`` at or after offset ``start`` of ``partition``
        (each id's latest if written twice), parsed; an id with none, or with an invalid
        one (the task agent dead-letters it), is left out. Raises :class:`BacklogUnreadable`."""
        async with self._lock:
            index = self._indexes.setdefault(partition, _Index())
            index.drop_below(start)
            fresh = time.monotonic() - index.read_at < FRESH
            if fresh and not any(t.encode() in index.offsets for t in task_ids):
                return {}
            try:
                consumer = await self._consumer()
            except KafkaError as exc:
                raise BacklogUnreadable(f"the broker did not answer: {exc!r}") from exc
            tp = TopicPartition(self.topic, partition)
            try:
                consumer.assign([tp])
                if not fresh:
                    await self._read_on(consumer, tp, index)
                wanted = {index.offsets[k]: t for t in task_ids if (k := t.encode()) in index.offsets}
                values = await _records_at(consumer, tp, set(wanted)) if wanted else {}
            except KafkaError as exc:
                await self._close()  # the next look starts a new one
                raise BacklogUnreadable(f"the broker did not answer: {exc!r}") from exc
            finally:
                if self._kafka is not None:  # not closed above
                    # Nothing fetched until the next look. Not unsubscribe(): that and the
                    # next assign() would each ask the broker for metadata.
                    self._kafka.pause(tp)
        found: dict[str, TaskRequest] = {}
        s = self.settings
        for offset, value in values.items():
            try:
                request = parse_task_message(value, max_bytes=s.max_message_bytes, max_depth=s.max_nesting,
                                             default_id=f"{self.topic}-{partition}-{offset}")
            except InvalidTask:
                continue
            if request.id == wanted[offset]:
                found[request.id] = request
        return found

    def forget(self, keep: Iterable[int]) -> None:
        """Drop the indexes of every partition but ``keep`` (those assigned here now)."""
        kept = set(keep)
        for partition in [p for p in self._indexes if p not in kept]:
            del self._indexes[partition]

    async def close(self) -> None:
        """Stop the consumer (a later look starts a new one)."""
        async with self._lock:
            await self._close()

    async def _close(self) -> None:
        consumer, self._kafka = self._kafka, None
        if consumer is not None:
            await consumer.stop()

    async def _consumer(self) -> AIOKafkaConsumer:
        if self._kafka is None:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap_servers, enable_auto_commit=False,
                                        fetch_max_wait_ms=10, auto_offset_reset="earliest",
                                        **client_options(self.settings))
            await consumer.start()
            self._kafka = consumer
        return self._kafka

    async def _read_on(self, consumer: AIOKafkaConsumer, tp: TopicPartition, index: _Index) -> None:
        """Index ``tp``'s records from ``index.next_offset`` to its end."""
        consumer.seek(tp, index.next_offset)
        deadline = time.monotonic() + READ_TIME
        while True:
            batch = await consumer.getmany(tp, timeout_ms=20, max_records=10_000)
            for record in batch.get(tp, ()):
                if record.key is not None:
                    index.add(record.key, record.offset)
            index.next_offset = await consumer.position(tp)
            if len(index.offsets) > MAX_INDEXED:  # not read to the end: never answers from the index alone
                raise BacklogUnreadable(f"over {MAX_INDEXED} unread task messages in partition {tp.partition}")
            end = consumer.highwater(tp)
            if not batch and end is not None and index.next_offset >= end:
                index.read_at = time.monotonic()
                return
            if time.monotonic() > deadline:
                raise BacklogUnreadable(f"partition {tp.partition}'s unread task messages take over "
                                        f"{READ_TIME:g} s to read")


async def _records_at(consumer: AIOKafkaConsumer, tp: TopicPartition, offsets: set[int]) -> dict[int, bytes]:
    """The values of ``tp``'s records at ``offsets`` (one pass from the lowest to the
    highest; a record gone or empty is left out)."""
    consumer.seek(tp, min(offsets))
    last = max(offsets)
    values: dict[int, bytes] = {}
    deadline = time.monotonic() + READ_TIME
    while await consumer.position(tp) <= last:
        if time.monotonic() > deadline:
            raise BacklogUnreadable(f"could not read back {len(offsets)} task messages of partition {tp.partition}")
        batch = await consumer.getmany(tp, timeout_ms=20, max_records=10_000)
        for record in batch.get(tp, ()):
            if record.offset in offsets and record.value is not None:
                values[record.offset] = record.value
    return values


def may_be_unread(consumer: Any, tp: Any) -> bool:
    """Whether task partition ``tp`` may hold records the task agent has not taken up:
    the worker's consumer has not read up to its end, or an offset it read since its
    last commit is neither acked nor being handled (``consumer.processing``: handed to
    the agent, not acked), so it waits in the stream's buffer. A record written since
    the consumer's last fetch of ``tp`` is not seen, as one not written yet."""
    try:
        end = consumer.highwater(tp)
    except Exception:  # noqa: BLE001 - e.g. the consumer is not started yet: look
        return True
    reads = private.read_offsets(consumer)
    read = reads.get(tp)
    committed = committed_offset(consumer, tp)
    if end is None or read is None or committed is None or read + 1 < end \
            or (isinstance(reads, ReadOffsets) and reads.held(tp)):
        return True
    acked = private.acked_index(consumer).get(tp) or ()
    gap = private.gaps(consumer).get(tp)
    handed = getattr(consumer, "processing", ())
    return any(offset not in acked and (tp, offset) not in handed and not (gap is not None and gap.at(offset))
               for offset in range(committed, read + 1))
