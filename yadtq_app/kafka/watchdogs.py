"""Watchdogs that get a stalled partition read again.

:class:`RecoveryWatchdog` watches Faust's table recovery, :class:`StreamWatchdog` the
task and events streams; the app calls each one's ``check`` every second. The stalls
they were written for: ``docs/brokers.md``, "Watchdogs".
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from faust.types import TP

from . import private
from .commits import committed_offset

__all__ = ["RecoveryWatchdog", "StreamWatchdog"]

logger = logging.getLogger(__name__)


class RecoveryWatchdog:
    """Gets Faust's changelog recovery going again when a partition stops getting records.

    A partition with records left to recover that got none for :attr:`stall` seconds
    is sought again to where its recovery stands and resumed; after :attr:`give_up`
    seconds without a record the app is crashed (``app.crash``), so a supervisor starts
    the worker again and its partitions go to the others meanwhile.
    """

    def __init__(self, app: Any, *, stall: float = 3.0, give_up: float = 60.0) -> None:
        self.app = app
        self.stall = stall
        self.give_up = give_up
        self._kicked: dict[TP, float] = {}

    async def check(self) -> None:
        """Call every second or so."""
        recovery = self.app.tables.recovery
        started = private.recovery_started_at(recovery)
        if not recovery.in_recovery or started is None:
            self._kicked.clear()
            return
        now = time.monotonic()
        received = private.recovery_events_received_at(recovery)
        for key, remaining in recovery.active_remaining().items():
            if remaining <= 0:
                continue
            # Recovery's keys can be aiokafka's TopicPartition (equal to a TP, but not
            # one); Faust's consumer asserts that its active partitions are TPs.
            tp = TP(key.topic, key.partition)
            last = max(received.get(tp, started), started)
            if now - max(last, self._kicked.get(tp, started)) < self.stall:
                continue
            self._kicked[tp] = now
            await self._unstick(recovery, tp, now - last)

    async def _unstick(self, recovery: Any, tp: TP, quiet: float) -> None:
        consumer = self.app.consumer
        offset = recovery.active_offsets[tp]
        try:
            position = await consumer.position(tp)
        except Exception:  # noqa: BLE001 - diagnostics only
            position = None
        state = (f"{tp.topic}-{tp.partition}: recovery has read to offset {offset} of "
                 f"{recovery.active_highwaters[tp]}, fetch position {position}, read offset "
                 f"{private.read_offsets(consumer).get(tp)}, paused {tp in private.paused_partitions(consumer)}; "
                 f"no record for {quiet:.0f} s")
        if quiet >= self.give_up:
            logger.error("%s: table recovery is stuck; stopping the worker", state)
            await self.app.crash(RuntimeError(f"table recovery stuck on {tp.topic}-{tp.partition}"))
            return
        logger.warning("%s: seeking it again", state)
        await consumer.seek(tp, max(offset, 0))
        consumer.resume_partitions([tp])


class StreamWatchdog:
    """Reads a task or events partition again when it stalls.

    A partition of ``app.rereadable_topics`` stalls when records are left (its
    committed offset is below its end), none of its messages is being processed and
    none reached an agent or finished for :attr:`stall` seconds (a finished message is
    committed within the commit interval); it is then sought back to its committed
    offset. Never during a rebalance or recovery, nor while every task slot
    is taken (backpressure).
    """

    def __init__(self, app: Any, *, stall: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.stall = stall
        self.clock = clock
        self._kicked: dict[TP, float] = {}
        #: When each partition was first seen assigned since the last rebalance.
        self._since: dict[TP, float] = {}

    def stalled(self) -> dict[TP, int]:
        """The partitions to read again now, each with the offset to read from."""
        app = self.app
        consumer = app.consumer
        if app.rebalancing or app.revoking or app.in_recovery or not app.flow_control.is_active():
            self._kicked.clear()
            self._since.clear()
            return {}
        now = self.clock()
        if app.stats.in_progress >= app.settings.concurrency:
            return {}  # every slot taken: messages wait their turn (backpressure), none is lost
        busy = {tp for tp, _ in consumer.processing}
        out: dict[TP, int] = {}
        for tp in consumer.assignment():
            since = self._since.setdefault(tp, now)
            if tp.topic not in app.rereadable_topics or tp in busy:
                continue
            committed = committed_offset(consumer, tp)
            end = consumer.highwater(tp)
            if committed is None or end is None or committed >= end:
                continue
            last = max(consumer.delivered_at.get(tp, 0.0), consumer.finished_at.get(tp, 0.0),
                       self._kicked.get(tp, 0.0), since)
            if now - last < self.stall:
                continue
            self._kicked[tp] = now
            out[tp] = committed
        return out

    async def check(self) -> None:
        """Call every second or so."""
        for tp, offset in self.stalled().items():
            logger.warning("%s-%d: records up to offset %s are left, none is being processed and none reached "
                           "an agent or finished for %.0f s; reading it again from offset %d", tp.topic, tp.partition,
                           self.app.consumer.highwater(tp), self.stall, offset)
            self.app.consumer.reread(tp, offset)
