"""The one door to Faust's, aiokafka's and mode's private attributes.

Every private attribute of faust-streaming or aiokafka that yadtq reads, writes or
calls is reached through a named function here; every private hook yadtq's subclasses
override (mode's worker's too) is named in :data:`OVERRIDDEN`. :data:`ACCESSED` and :data:`OVERRIDDEN` list
them all as ``(owner, name)``, and ``tests/unit/test_private_names.py`` checks that
each exists on the pinned versions, so an upgrade that renames one fails a test instead
of silently skipping a fix.
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any, Callable, Optional

import aiokafka
from aiokafka.cluster import ClusterMetadata
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.producer.message_accumulator import MessageAccumulator, MessageBatch
from faust import streams as faust_streams
from faust.app.base import App
from faust.assignor.partition_assignor import PartitionAssignor
from faust.stores.base import SerializedStore
from faust.tables.base import Collection
from faust.tables.recovery import Recovery
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.threads import ServiceThread
from mode.worker import Worker as ModeWorker

__all__ = [
    "ACCESSED", "OVERRIDDEN", "acked", "acked_index", "app_producer", "clean_unacked_messages", "cluster_partition",
    "committed_offsets", "consumer_client", "consumer_coordinator", "consumer_fetcher", "consumer_subscription",
    "consumer_thread", "disable_compiled_stream_iterator", "ensure_producer", "ensure_thread_consumer",
    "fetch_planner", "fetcher_client", "fetcher_wait_ms", "gaps", "heartbeat_call", "paused_partitions",
    "read_offsets", "recovery_events_received_at", "recovery_started_at", "rejoining", "replace_fetch_planner",
    "replace_heartbeat_call",
    "set_consumer_fetch_wait", "set_fetcher_client", "set_fetcher_wait_ms", "set_read_offsets", "store_get",
    "thread_consumer", "tps_url", "unacked_messages", "wait_for_ack", "ack_waiter", "loop_selector",
    "producer_accumulator", "send_lingering", "serve_service_thread", "service_thread_runner",
    "buffered_partitions", "wake_fetch_waiters",
]

_Consumer = faust_consumer.Consumer
_Thread = faust_aiokafka.AIOKafkaConsumerThread

#: Private attributes reached through the functions below: ``(owner, name)``.
ACCESSED: tuple[tuple[Any, str], ...] = (
    (_Consumer, "_committed_offset"),
    (_Consumer, "_read_offset"),
    (_Consumer, "_acked"),
    (_Consumer, "_acked_index"),
    (_Consumer, "_gap"),
    (_Consumer, "_unacked_messages"),
    (_Consumer, "_waiting_for_ack"),
    (_Consumer, "_wait_for_ack"),
    (_Consumer, "_clean_unacked_messages"),
    (_Consumer, "_paused_partitions"),
    (_Consumer, "_buffered_partitions"),
    (faust_consumer.ThreadDelegateConsumer, "_thread"),
    (_Thread, "_consumer"),
    (_Thread, "_ensure_consumer"),
    (aiokafka.AIOKafkaConsumer, "_fetch_max_wait_ms"),
    (aiokafka.AIOKafkaConsumer, "_coordinator"),
    (aiokafka.AIOKafkaConsumer, "_subscription"),
    (aiokafka.AIOKafkaConsumer, "_fetcher"),
    (aiokafka.AIOKafkaConsumer, "_client"),
    (GroupCoordinator, "_performed_join_prepare"),
    (Fetcher, "_fetch_max_wait_ms"),
    (Fetcher, "_client"),
    (Fetcher, "_get_actions_per_node"),
    (Fetcher, "_fetch_waiters"),
    (GroupCoordinator, "_do_heartbeat"),
    (ClusterMetadata, "_partitions"),
    (faust_streams, "_CStreamIterator"),
    (Recovery, "_recovery_started_at"),
    (Recovery, "_active_events_received_at"),
    (faust_aiokafka.Producer, "_ensure_producer"),
    (PartitionAssignor, "_tps_url"),
    (SerializedStore, "_get"),  # the rocksdb store, yadtq's
    (App, "_producer"),
    (aiokafka.AIOKafkaProducer, "_message_accumulator"),
    (MessageAccumulator, "_batches"),
    (MessageAccumulator, "_waiter_future"),
    (MessageAccumulator, "_wakeup_handle"),
    (MessageBatch, "_builder"),
    (asyncio.selector_events.BaseSelectorEventLoop, "_selector"),
    (ServiceThread, "_serve"),
    (ServiceThread, "_thread"),
)

#: Private hooks that yadtq's subclasses override (they cannot go through a function):
#: ``(owner, name)``.
OVERRIDDEN: tuple[tuple[Any, str], ...] = (
    (App, "_on_partitions_revoked"),  # yadtq_app.application.YadtqApp
    (App, "_new_transport"),
    (App, "_discovery_modules"),
    (App, "_new_web"),
    (ModeWorker, "_sentinel_task"),  # yadtq_app.faust_worker.Worker
    (Collection, "_on_changelog_sent"),  # yadtq_app.fencing.FencedTable
    (faust_aiokafka.Consumer, "_new_consumer_thread"),  # yadtq_app.kafka.consumer.Consumer
    (_Consumer, "_new_offset"),
    (_Consumer, "_add_gap"),
    (_Thread, "_create_worker_consumer"),  # yadtq_app.kafka.thread.ConsumerThread
    (_Thread, "_highwaters"),
    (ServiceThread, "_gather_remaining_tasks"),  # yadtq_app.kafka.in_loop.InLoop
    (ServiceThread, "_keepalive2"),
    (ServiceThread, "_thread_keepalive"),
)


# -- Faust's consumer ----------------------------------------------------------------------
def committed_offsets(consumer: Any) -> Any:
    """The consumer's last committed offset per partition (a dict; ``None``: none)."""
    return consumer._committed_offset


def read_offsets(consumer: Any) -> Any:
    """The consumer's read offset per partition."""
    return consumer._read_offset


def set_read_offsets(consumer: Any, offsets: Any) -> None:
    """Replace the consumer's read-offset mapping with ``offsets``."""
    consumer._read_offset = offsets


def acked(consumer: Any) -> Any:
    """The acked offsets per partition (lists)."""
    return consumer._acked


def acked_index(consumer: Any) -> Any:
    """The acked offsets per partition (sets)."""
    return consumer._acked_index


def gaps(consumer: Any) -> Any:
    """The read gaps per partition (interval trees)."""
    return consumer._gap


def unacked_messages(consumer: Any) -> Any:
    """The messages handed on and not acked yet (a weak set)."""
    return consumer._unacked_messages


def ack_waiter(consumer: Any) -> Any:
    """The future that waiters for the consumer's next ack wait on (``None``: no waiter)."""
    return consumer._waiting_for_ack


async def wait_for_ack(consumer: Any, timeout: float) -> None:
    """Wait up to ``timeout`` s for the consumer's next ack."""
    await consumer._wait_for_ack(timeout=timeout)


def clean_unacked_messages(consumer: Any) -> None:
    """Drop acked messages from the consumer's unacked set."""
    consumer._clean_unacked_messages()


def paused_partitions(consumer: Any) -> Any:
    """The partitions Faust paused (empty if the consumer has no such set)."""
    return getattr(consumer, "_paused_partitions", ())


def buffered_partitions(consumer: Any) -> Any:
    """The partitions Faust stopped polling because their agent's buffer is full."""
    return getattr(consumer, "_buffered_partitions", ())


def wake_fetch_waiters(consumer: Any) -> None:
    """Wake a poll of Faust's ``consumer`` that waits for new records (aiokafka's
    ``Fetcher.fetched_records``): it looks again at the records already fetched, for
    the partitions active now. Nothing happens before the consumer has started."""
    fetcher = consumer_fetcher(thread_consumer(consumer_thread(consumer)))
    for waiter in list(getattr(fetcher, "_fetch_waiters", ())):
        if not waiter.done():
            waiter.set_result(None)


def consumer_thread(consumer: Any) -> Any:
    """The consumer's thread (``None`` before it is made)."""
    return getattr(consumer, "_thread", None)


def thread_consumer(thread: Any) -> Optional[aiokafka.AIOKafkaConsumer]:
    """The aiokafka consumer a consumer thread runs (``None`` before it starts)."""
    return getattr(thread, "_consumer", None)


def ensure_thread_consumer(thread: Any) -> aiokafka.AIOKafkaConsumer:
    """The aiokafka consumer a consumer thread runs; raises if it has not started."""
    kafka: aiokafka.AIOKafkaConsumer = thread._ensure_consumer()
    return kafka


# -- aiokafka's consumer -------------------------------------------------------------------
def set_consumer_fetch_wait(kafka: aiokafka.AIOKafkaConsumer, ms: int) -> None:
    """Set the fetch wait an aiokafka consumer gives its fetcher when it starts."""
    kafka._fetch_max_wait_ms = ms


def consumer_coordinator(kafka: aiokafka.AIOKafkaConsumer) -> Any:
    """The group coordinator of an aiokafka consumer (``None`` before it starts)."""
    return getattr(kafka, "_coordinator", None)


def consumer_client(kafka: aiokafka.AIOKafkaConsumer) -> Any:
    """The aiokafka client (connections, metadata) of an aiokafka consumer."""
    return kafka._client


def rejoining(coordinator: Any) -> bool:
    """Whether the group coordinator is rejoining its group: from giving up its
    partitions until its JoinGroup and SyncGroup are answered."""
    return bool(coordinator._performed_join_prepare)


def consumer_subscription(kafka: aiokafka.AIOKafkaConsumer) -> Any:
    """The subscription state of an aiokafka consumer."""
    return kafka._subscription


def consumer_fetcher(kafka: Any) -> Any:
    """The fetcher of an aiokafka consumer (``None`` before it starts)."""
    return getattr(kafka, "_fetcher", None)


def fetcher_client(fetcher: Any) -> Any:
    """The aiokafka client a fetcher sends its requests with (``None``: no fetcher, or
    not the one yadtq knows)."""
    return getattr(fetcher, "_client", None)


def set_fetcher_client(fetcher: Any, client: Any) -> None:
    """Make the fetcher send its requests with ``client``."""
    fetcher._client = client


def fetcher_wait_ms(fetcher: Any) -> Any:
    """The fetch wait (ms) the fetcher puts into its next fetch request."""
    return fetcher._fetch_max_wait_ms


def set_fetcher_wait_ms(fetcher: Any, ms: int) -> None:
    """Set the fetch wait (ms) for the fetcher's next fetch request."""
    fetcher._fetch_max_wait_ms = ms


def fetch_planner(fetcher: Any) -> Optional[Callable[[Any], Any]]:
    """The fetcher's method that builds each round of fetch requests, or ``None`` if
    this fetcher has no such method or no fetch wait (not the one yadtq knows)."""
    plan = getattr(fetcher, "_get_actions_per_node", None)
    return plan if plan is not None and hasattr(fetcher, "_fetch_max_wait_ms") else None


def replace_fetch_planner(fetcher: Any, plan: Callable[[Any], Any]) -> None:
    """Make ``plan`` build the fetcher's fetch requests."""
    fetcher._get_actions_per_node = plan


def heartbeat_call(coordinator: Any) -> Callable[[], Any]:
    """The coordinator's method that sends one group heartbeat."""
    beat: Callable[[], Any] = coordinator._do_heartbeat
    return beat


def replace_heartbeat_call(coordinator: Any, beat: Callable[[], Any]) -> None:
    """Make ``beat`` send the coordinator's group heartbeats."""
    coordinator._do_heartbeat = beat


def cluster_partition(client: Any, topic: str, partition: int) -> Any:
    """A partition's metadata (leader, replicas, in-sync replicas) as ``client`` knows it."""
    return client.cluster._partitions[topic][partition]


# -- aiokafka's producer -------------------------------------------------------------------

def producer_accumulator(kafka: aiokafka.AIOKafkaProducer) -> Any:
    """The message accumulator of a started aiokafka producer (its batches per partition)."""
    return kafka._message_accumulator


def send_lingering(accumulator: Any) -> bool:
    """Close every batch of ``accumulator`` still open for more records and wake its
    sender, so they go out now, as aiokafka's ``flush_for_commit`` does without
    waiting for them; whether any was open. Cheap when none lingers: aiokafka keeps a
    wake-up timer only while a batch lingers."""
    handle = accumulator._wakeup_handle
    if handle is None or handle.cancelled():
        return False
    closed = False
    for batches in accumulator._batches.values():
        if batches:
            builder = batches[-1]._builder  # only a partition's newest batch takes records
            if not builder.closed():
                builder.close()
                closed = True
    if closed and not accumulator._waiter_future.done():
        accumulator._waiter_future.set_result(None)
    return closed


# -- asyncio -------------------------------------------------------------------------------

def loop_selector(loop: asyncio.AbstractEventLoop) -> Optional[selectors.BaseSelector]:
    """The selector a selector event loop waits in (``None`` for any other loop)."""
    return getattr(loop, "_selector", None)


# -- mode's service threads ----------------------------------------------------------------

def serve_service_thread(service: Any) -> Any:
    """The coroutine a mode ``ServiceThread`` runs in its thread: starts the service,
    waits until it is stopped, then shuts it down."""
    return service._serve()


def service_thread_runner(service: Any) -> Any:
    """What runs a mode ``ServiceThread`` (its ``Worker``; ``None`` before it starts)."""
    return getattr(service, "_thread", None)


# -- the rest of Faust ---------------------------------------------------------------------
def disable_compiled_stream_iterator() -> None:
    """Make Faust's streams use the pure-Python iterator, whose acks call ``Consumer.ack``."""
    faust_streams._CStreamIterator = None  # type: ignore[attr-defined]  # private: not exported


def recovery_started_at(recovery: Any) -> Optional[float]:
    """When table recovery started (monotonic s; ``None``: not yet)."""
    started: Optional[float] = recovery._recovery_started_at
    return started


def recovery_events_received_at(recovery: Any) -> Any:
    """When recovery last got a record of each active partition (monotonic s)."""
    return recovery._active_events_received_at


def ensure_producer(producer: Any) -> aiokafka.AIOKafkaProducer:
    """The aiokafka producer inside Faust's ``producer``, made if need be."""
    kafka: aiokafka.AIOKafkaProducer = producer._ensure_producer()
    return kafka


def app_producer(app: Any) -> Any:
    """The app's producer if one was made, else ``None`` (never makes one)."""
    return getattr(app, "_producer", None)


def tps_url(assignor: Any) -> Any:
    """Which worker URL serves each table partition, as the assignor last learnt."""
    return assignor._tps_url


def store_get(store: Any, key: bytes) -> Optional[bytes]:
    """The raw stored value for ``key`` (``None`` if absent), bypassing the table's codecs."""
    value: Optional[bytes] = store._get(key)
    return value
