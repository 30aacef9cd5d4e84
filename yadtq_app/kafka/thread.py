"""The worker consumer's "thread": Faust's, served on the app's own event loop
(:class:`~yadtq_app.kafka.in_loop.InLoop`), with yadtq's fetch wait, fetch lanes,
heartbeat tracking, start-offset seek, end-offset remedy and a stop that leaves the
group in a rebalance too.

:class:`ConsumerThread` reads its settings from its transport's class attributes
(:class:`yadtq_app.kafka.transport.Transport`: ``fetch_max_wait_ms``,
``busy_fetch_max_wait_ms``, ``fix_end_offsets``). Why each part is there:
``docs/brokers.md``, "The consumer".
"""

from __future__ import annotations

import asyncio
from typing import Any, List, Mapping, Optional

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode.threads import QueueServiceThread

from . import private
from .end_offsets import join_servers, true_end_offsets
from .fetch_wait import adapt_fetch_wait
from .heartbeats import membership_lost, track_heartbeats
from .in_loop import InLoop
from .lanes import FetchLanes, install_lanes
from .leaving import leave_now

__all__ = ["ConsumerThread"]


class ConsumerThread(InLoop, faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread with yadtq's remedies, on the app's loop."""

    #: The fetcher's lanes (:mod:`yadtq_app.kafka.lanes`) once the consumer has started.
    fetch_lanes: Optional[FetchLanes] = None

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Faust passes a fixed fetch_max_wait_ms=1500; there is no setting for it.
        private.set_consumer_fetch_wait(consumer, transport.fetch_max_wait_ms)
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        kafka = private.thread_consumer(self)
        if kafka is None:
            return
        transport: Any = self.transport  # yadtq's Transport: its remedies are class attributes
        consumer: Any = self.consumer  # yadtq's Consumer: it carries the fetch wait and heartbeats
        if transport.busy_fetch_max_wait_ms != transport.fetch_max_wait_ms:
            adapt_fetch_wait(kafka, consumer.fetch_wait)
        self.fetch_lanes = install_lanes(kafka)
        track_heartbeats(kafka, consumer.heartbeats)

    async def on_thread_stop(self) -> None:
        """Faust's: stop the method queue (none runs here), then the consumer; but a consumer that is
        rejoining its group leaves it first (:func:`~yadtq_app.kafka.leaving.leave_now`),
        once its stop has begun, so its coordination task ends instead of joining again."""
        await QueueServiceThread.on_thread_stop(self)
        kafka = private.thread_consumer(self)
        if kafka is None:
            return
        stopping = asyncio.ensure_future(kafka.stop())
        await asyncio.sleep(0)  # the stop has begun: its coordinator is closing
        try:
            await leave_now(kafka)
        finally:
            await stopping

    def close(self) -> None:
        """Nothing: the consumer stops with this service (:meth:`on_thread_stop`), and
        leaves the group then.

        Faust calls this when a rebalance assigns partitions to an app that is stopping.
        Faust's own marks the aiokafka consumer stopped and closes its client and its
        coordinator side by side, so that the stop finds nothing to do and no LeaveGroup
        is sent (``docs/brokers.md``, "A rebalance during a stop")."""

    def verify_event_path(self, now: float, tp: TP) -> None:
        """Faust's check that ``tp`` is fetched and its stream moving, logged as an error
        once ``stream_processing_timeout`` has passed; skipped for a partition Faust
        paused, which it does not fetch on purpose (the changelogs of the tables this
        worker writes, paused once recovered: ``docs/brokers.md``, "Stall reports")."""
        if tp not in private.paused_partitions(self.consumer):
            super().verify_event_path(now, tp)

    def wake_fetcher(self, *, spare_lanes_only: bool = False) -> None:
        """Send new fetches now instead of waiting for those in flight; with
        ``spare_lanes_only``, not while some broker has a fetch held on every lane
        (:meth:`~yadtq_app.kafka.lanes.FetchLanes.spare_lane`: a new fetch would wait
        behind it)."""
        lanes = self.fetch_lanes
        if lanes is not None and (not spare_lanes_only or lanes.spare_lane()):
            lanes.wake()

    def membership_lost(self) -> bool:
        """True once the broker no longer knows this consumer (evicted, not yet rejoined).

        Its offset commits fail from then on, so what it acks is not committed.
        """
        return membership_lost(private.thread_consumer(self))

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek every assigned partition to its committed offset, and the never-committed
        ones (outside changelogs) to their log start offsets when the app reads from the
        earliest; returns where each partition's reading starts."""
        committed: Mapping[TP, int] = await self.call_thread(self._seek_to_committed_or_start)
        return committed

    async def _seek_to_committed_or_start(self) -> Mapping[TP, int]:
        consumer = private.ensure_thread_consumer(self)
        committed: Mapping[TP, int] = await consumer.seek_to_committed()
        if self.app.conf.consumer_auto_offset_reset == "earliest":
            changelogs = self.app.tables.changelog_topics
            never = [tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs]
            if never:
                # The log start offsets, asked of the broker: not the position after a
                # seek_to_beginning, which a fetch answered meanwhile may have moved on.
                starts = await consumer.beginning_offsets(never)
                committed = dict(committed)
                for tp in never:  # where reading starts: the floor commits must not pass
                    consumer.seek(tp, starts[tp])
                    committed[tp] = starts[tp]
        return committed

    async def _highwaters(self, partitions: List[TP]) -> Mapping[TP, int]:
        listed = await super()._highwaters(partitions)
        transport: Any = self.transport  # yadtq's Transport: its remedies are class attributes
        if not transport.fix_end_offsets or self.consumer.in_transaction:
            return listed
        servers = faust_aiokafka.server_list(transport.url, transport.default_port)
        conf = self.app.conf
        auth = faust_aiokafka.credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context)
        return await true_end_offsets(join_servers(servers), listed, client_options=auth)
