"""Keep a worker that was frozen from acting on partitions it may have lost.

A worker paused longer than its session timeout (SIGSTOP, a VM stall, a debugger) is
evicted from the consumer group and its partitions move to another worker. When it
resumes it still holds messages it fetched before the pause and a local table it
thinks it owns; acting on them would run tasks a second time and write stale rows
into the changelog (a zombie). Kafka transactions would fence it, but the embedded
broker has none and yadtq must be correct without them.

:class:`FreezeGuard` notices the pause — the event loop saw no tick for longer than
``threshold`` — and closes the gate until the consumer group has assigned partitions
again (the normal outcome of an eviction) or ``hold`` seconds pass with no rebalance
(the pause was short enough that the group kept us). Pure logic with an injectable
clock; the agents tick it and ask it before acting.

The guard cannot stop what the frozen worker had already handed to its producer: once
it resumes, those changelog records are sent, and land *after* the rows the new owner
wrote meanwhile. Faust records the offset of each of its own changelog writes as the
point up to which the local store is complete (the *persisted offset*); a stale write
landing late would move that point past the new owner's rows, which this store never
saw, and when the partition comes back the next recovery reads on from there: the
newer rows are skipped for good and the stale ones answer (seen: a task that had
finished elsewhere read ``queued`` again). :class:`FencedTable` records a write's
offset only when it directly follows the last one (:func:`contiguous`); after a gap it
leaves the persisted offset where the store is known complete, so the next recovery
replays the changelog from there, and the status table's merge
(:func:`yadtq_app.state.merge_rows`) keeps the newest row.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Optional

import faust
from faust.types import TP

__all__ = ["FreezeGuard", "FencedTable", "contiguous"]

logger = logging.getLogger(__name__)


class FreezeGuard:
    """Closed for a while after the process was frozen; see the module docs."""

    def __init__(self, *, threshold: float, hold: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.hold = hold
        self.clock = clock
        #: The last tick; ``None`` before the first, which starts the watch: a worker's
        #: start (its first assignment and table recovery, before Faust starts its
        #: timers) is no freeze.
        self.last_tick: Optional[float] = None
        self.closed_until = 0.0
        self.freezes = 0

    @property
    def tick_interval(self) -> float:
        """How often a timer should :meth:`tick` (s): a tenth of ``threshold``, at most a
        second, so the loop may lag nine tenths of it before a late tick reads as a freeze."""
        return min(1.0, self.threshold / 10)

    def tick(self) -> None:
        """Call at least every :attr:`tick_interval` (a timer does, and every agent before it acts)."""
        now = self.clock()
        gap = 0.0 if self.last_tick is None else now - self.last_tick
        if gap > self.threshold:
            self.freezes += 1
            self.closed_until = now + self.hold
            logger.warning("the worker was frozen for %.1f s; not acting until the group reassigns partitions",
                           gap)
        self.last_tick = now

    def is_open(self) -> bool:
        self.tick()
        return self.clock() >= self.closed_until

    def on_assigned(self) -> None:
        """A rebalance finished: what we hold now is ours."""
        self.closed_until = 0.0
        if self.last_tick is not None:
            self.last_tick = self.clock()


def contiguous(last: Optional[int], offset: int) -> bool:
    """Whether a changelog write at ``offset`` directly follows ``last``, the persisted
    offset (``None``: the store holds nothing of the partition yet).

    The partition's owner is its changelog's only writer, so its writes land at
    consecutive offsets, the first one right after what recovery read. Anything else
    means records this store never applied lie in between.
    """
    return offset == (0 if last is None else last + 1)


class FencedTable(faust.Table[Any, Any]):
    """A Faust table whose persisted offset never skips records (see the module docs)."""

    def __init__(self, app: Any, *args: Any, **kwargs: Any) -> None:
        # The app's bounds on RocksDB memory (yadtq_app.settings: rocksdb_*), unless the
        # table names its own; a fresh dict each time, as Faust's store pops from it.
        settings = getattr(app, "settings", None)
        if settings is not None:
            kwargs["options"] = {**settings.store_options, **(kwargs.get("options") or {})}
        super().__init__(app, *args, **kwargs)
        self._gapped: set[TP] = set()

    def _on_changelog_sent(self, fut: Any) -> None:  # a private Faust hook: in yadtq_app.kafka.private.OVERRIDDEN
        if not self.app.in_transaction:  # transactions fence zombies themselves
            res = fut.result()
            tp = res.topic_partition
            try:
                last = self.data.persisted_offset(tp)
            except NotImplementedError:  # a memory store persists nothing
                return
            if not contiguous(last, res.offset):
                if tp not in self._gapped:
                    self._gapped.add(tp)
                    logger.warning("%s-%d: write landed at offset %d after %s: another writer's records lie "
                                   "in between; the local store stays marked complete up to %s, so the next "
                                   "recovery replays from there", tp.topic, tp.partition, res.offset, last, last)
                return
            self._gapped.discard(tp)
        super()._on_changelog_sent(fut)
