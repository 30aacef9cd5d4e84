"""The worker consumer: Faust's aiokafka consumer with a correct commit point.

:class:`Consumer` commits only past acked messages of the current generation
(:func:`~yadtq_app.kafka.commits.head_unacked`, :func:`~yadtq_app.kafka.commits.stale_ack`),
reads again what a stream dropped unprocessed at a rebalance (for ``app.rereadable_topics``),
pauses changelog partitions in aiokafka whenever Faust pauses them, and tells the fetch
wait when work flows. The class that runs aiokafka's consumer (Faust's "consumer thread",
served on the app's own loop) is the :attr:`Consumer.ConsumerThread` class attribute.
Why each part is there: ``docs/brokers.md``, "The consumer".
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Optional

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from . import private
from .commits import ReadOffsets, head_unacked, stale_ack
from .delivery import deliver_first, is_suspension_wait
from .fetch_wait import FetchWait, set_fetching
from .heartbeats import Heartbeats
from .thread import ConsumerThread

if TYPE_CHECKING:  # pragma: no cover
    from .transport import Transport

__all__ = ["Consumer", "REREAD_DELAY", "EXPECT_GRACE", "EXPECT_TRIES"]

logger = logging.getLogger(__name__)

#: How often a seek back to dropped messages is tried while a rebalance is under way (s).
REREAD_DELAY = 0.1
#: How long the message at a seek position may lag behind a later one (s), and how many
#: times the partition is read again for it (see :meth:`Consumer.delivered`).
EXPECT_GRACE = 0.5
EXPECT_TRIES = 3


class Consumer(faust_aiokafka.Consumer):
    """Faust's consumer with a correct commit point (see the module docs)."""

    #: What runs the aiokafka consumer (on the app's loop: :mod:`~yadtq_app.kafka.in_loop`).
    ConsumerThread: ClassVar[type[faust_aiokafka.AIOKafkaConsumerThread]] = ConsumerThread

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        private.set_read_offsets(self, ReadOffsets())
        #: Where reading resumed after the last seek: the floor no commit may pass.
        self._yadtq_floor: dict[TP, int] = {}
        #: Seek positions whose message has not reached the agent yet: (offset, tries).
        self._yadtq_expect: dict[TP, tuple[int, int]] = {}
        #: Partitions to seek back to (lowest offset each), and the task doing it.
        self._yadtq_reread: dict[TP, int] = {}
        self._yadtq_reread_task: Optional[asyncio.Future[None]] = None
        transport: Transport = self.transport  # type: ignore[assignment]  # always yadtq's Transport
        #: The fetch wait of the worker consumer, by how busy the agents are.
        self.fetch_wait = FetchWait(transport.fetch_max_wait_ms, transport.busy_fetch_max_wait_ms)
        #: When an agent last got a message of each partition (monotonic s), when a
        #: message of each last finished (was acked), and the messages agents got and
        #: have not acked yet (tp, offset): being processed.
        self.delivered_at: dict[TP, float] = {}
        self.finished_at: dict[TP, float] = {}
        self.processing: set[tuple[TP, int]] = set()
        #: When the group coordinator last answered a heartbeat.
        self.heartbeats = Heartbeats()

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return self.ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def pause_partitions(self, tps: Iterable[TP]) -> None:
        tps = set(tps)
        super().pause_partitions(tps)
        self._fetch_changelogs(tps, False)

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        tps = set(tps)
        super().resume_partitions(tps)
        self._fetch_changelogs(tps, True)

    def _fetch_changelogs(self, tps: Iterable[TP], fetch: bool) -> None:
        """Stop (or start again) fetching the changelog partitions among ``tps`` in
        aiokafka too; other topics are left to Faust's own pause."""
        changelogs = self.app.tables.changelog_topics
        chosen = [aiokafka.TopicPartition(tp.topic, tp.partition) for tp in tps if tp.topic in changelogs]
        if chosen:
            set_fetching(self, chosen, fetch)  # on this loop, the consumer's; nothing before it starts

    async def perform_seek(self) -> None:
        """Faust's seek back to the committed offsets; then hold the read offsets there
        (see :class:`ReadOffsets`) and forget every ack and gap recorded before it."""
        await super().perform_seek()
        floor = self._yadtq_floor
        rereadable = getattr(self.app, "rereadable_topics", ())
        read = private.read_offsets(self)
        for tp, offset in read.items():
            if offset is not None and offset >= 0:
                floor[tp] = offset
                if tp.topic in rereadable:
                    read.hold(tp, offset)
                    self._expect(tp, offset)
        acked, acked_index, gaps = private.acked(self), private.acked_index(self), private.gaps(self)
        with ack_lock:
            for tp in self.assignment():
                acked.pop(tp, None)
                acked_index.pop(tp, None)
                gaps.pop(tp, None)

    def ack(self, message: Any) -> bool:
        """Faust's ack, except that an ack of an earlier generation, or made while flow
        control is off, does not count (the message is read again if rereadable)."""
        self.processing.discard((message.tp, message.offset))
        self.finished_at[message.tp] = time.monotonic()
        if stale_ack(message.generation_id, self.app.consumer_generation_id) \
                or not self.app.flow_control.is_active():
            with ack_lock:
                message.acked = True
                private.unacked_messages(self).discard(message)
                notify(private.ack_waiter(self))
            if message.topic in getattr(self.app, "rereadable_topics", ()):
                self.loop.call_soon_threadsafe(self._reread_later, message.tp, message.offset)
            return False
        return super().ack(message)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        if private.read_offsets(self).held(tp):
            return  # a message read before the seek, not a hole (see ReadOffsets)
        await super()._add_gap(tp, offset_from, offset_to)

    def on_buffer_drop(self, tp: TP) -> None:
        """Faust's (poll ``tp`` again: its agent's buffer has room), and wake a poll
        that waits meanwhile for records of the other partitions: it passed over
        ``tp``'s records already fetched and would wait for new ones (up to Faust's
        1 s poll) before returning them."""
        resumed = tp in private.buffered_partitions(self)
        super().on_buffer_drop(tp)
        if resumed:
            private.wake_fetch_waiters(self)

    def fetch_written(self, tps: Iterable[TP]) -> None:
        """Records were just written to ``tps``. On a broker that holds a fetch for its
        whole wait though records arrive (:attr:`Transport.fetch_woken_by_writes` false:
        the embedded one), fetch again now if this worker reads one of them and
        processes no message: the fetch in flight was sent before the write, and a
        record written meanwhile waits out the rest of its wait. Not when the worker is
        at work (it fetches often anyway, and each fetch again costs it one), nor when
        every lane has a fetch held (:meth:`~yadtq_app.kafka.lanes.FetchLanes.spare_lane`:
        the new one would wait behind it)."""
        transport: Transport = self.transport  # type: ignore[assignment]  # always yadtq's Transport
        if transport.fetch_woken_by_writes or self.processing:
            return
        thread = private.consumer_thread(self)
        if not isinstance(thread, ConsumerThread):
            return
        assigned = self.assignment()
        if any(tp in assigned for tp in tps):
            thread.wake_fetcher(spare_lanes_only=True)

    def _expect(self, tp: TP, offset: int, tries: int = 0) -> None:
        self._yadtq_expect[tp] = (offset, tries)

    def delivered(self, tp: TP, offset: int) -> None:
        """The task agent got the message at ``offset`` of ``tp``.

        After a seek, the first message the agent gets must be the one at the seek
        position; if a later one comes first and it does not follow within
        :data:`EXPECT_GRACE` s, the partition is read again from there (at most
        :data:`EXPECT_TRIES` times). Also marks the worker busy for the fetch wait.
        """
        self.fetch_wait.last_work = now = time.monotonic()
        self.delivered_at[tp] = now
        self.processing.add((tp, offset))
        expected = self._yadtq_expect.get(tp)
        if expected is None:
            return
        if offset == expected[0]:
            del self._yadtq_expect[tp]
        elif offset > expected[0]:
            self.loop.call_later(EXPECT_GRACE, self._expect_overdue, tp, expected)

    def _expect_overdue(self, tp: TP, expected: tuple[int, int]) -> None:
        if self._yadtq_expect.get(tp) != expected:
            return  # it arrived, or a new seek replaced it
        offset, tries = expected
        del self._yadtq_expect[tp]
        if tries >= EXPECT_TRIES:
            logger.error("%s-%d: the message at offset %d never reached the agent after %d reads", tp.topic,
                         tp.partition, offset, tries + 1)
            return
        logger.warning("%s-%d: the message at offset %d, where reading resumed, did not reach the agent; "
                       "reading again from there", tp.topic, tp.partition, offset)
        self._expect(tp, offset, tries + 1)
        self._reread_later(tp, offset)

    def awaiting(self, tp: TP) -> Optional[int]:
        """The seek position of ``tp`` whose message has not reached an agent yet, if
        any: a later message of ``tp`` that came first does not follow an unbroken read."""
        expected = self._yadtq_expect.get(tp)
        return expected[0] if expected is not None else None

    def reread(self, tp: TP, offset: int) -> None:
        """Read ``tp`` again from ``offset`` (soon, unless a rebalance seeks it first)."""
        self._reread_later(tp, offset)

    def _reread_later(self, tp: TP, offset: int) -> None:
        """Make sure a message acked without counting is read again (see :func:`stale_ack`)."""
        pending = self._yadtq_reread
        pending[tp] = min(offset, pending.get(tp, offset))
        task = self._yadtq_reread_task
        if task is None or task.done():
            self._yadtq_reread_task = asyncio.ensure_future(self._reread())

    async def _reread(self) -> None:
        pending = self._yadtq_reread
        while pending and not self.should_stop:  # stopped: the next owner reads from the commit
            await asyncio.sleep(REREAD_DELAY)
            if self.app.rebalancing or not self.app.flow_control.is_active() or not self.flow_active:
                continue  # the rebalance's own seek comes first
            todo = dict(pending)
            pending.clear()
            try:
                assigned = self.assignment()
                for tp, offset in todo.items():
                    committed = private.committed_offsets(self).get(tp)
                    if tp in assigned and (committed is None or offset >= committed):
                        logger.info("%s-%d: reading again from offset %d", tp.topic, tp.partition, offset)
                        await self.seek(tp, offset)
            except Exception:  # the next rebalance seeks anyway
                logger.exception("could not seek back to messages dropped unprocessed: %s", todo)

    async def wait_first(self, *coros: Any, timeout: Any = None) -> Any:
        """``mode``'s ``wait_first``; for Faust's drain loop, which races each message's
        delivery against a flow suspension, :func:`~yadtq_app.kafka.delivery.deliver_first`."""
        if len(coros) == 2 and timeout is None and asyncio.iscoroutine(coros[0]) and not self.suspend_flow.is_set() \
                and is_suspension_wait(coros[1], self.suspend_flow):
            return await deliver_first(coros[0], coros[1], super().wait_first)
        return await super().wait_first(*coros, timeout=timeout)

    async def wait_empty(self) -> None:
        """Faust's wait for every message being processed, except, during a rebalance,
        the task messages whose attempts are leased (``app.lease_covers``): they run on
        across the rebalance and their owner waits for the outcome. First the app's
        ``on_wait_empty`` hooks let go of what need not be waited for. An app that is
        not a YadtqApp (no ``revoking``) waits for every message, as Faust's does."""
        app: Any = self.app
        for hook in getattr(app, "on_wait_empty", ()):
            await hook()
        # A message whose ack Faust did not count (below the committed offset, or its
        # offset acked already) stays in Faust's set: its wait would wait a full second
        # for an ack that came before it.
        private.clean_unacked_messages(self)
        if not getattr(app, "revoking", False) or app.should_stop:
            await super().wait_empty()
            return
        while not self.should_stop and any(not app.lease_covers(m) for m in private.unacked_messages(self)):
            await self.commit()
            await private.wait_for_ack(self, timeout=1)
            private.clean_unacked_messages(self)
        await self.commit_and_end_transactions()

    def _new_offset(self, tp: TP) -> Optional[int]:
        committed = private.committed_offsets(self)[tp]
        if committed is None:
            committed = self._yadtq_floor.get(tp)
        if head_unacked(committed, private.acked(self)[tp], private.acked_index(self)[tp], private.gaps(self)[tp]):
            return None
        return super()._new_offset(tp)
