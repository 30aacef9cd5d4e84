"""Broker profiles, and fixes to Faust's Kafka consumer: the one place for both.

Two profiles, chosen by ``YADTQ_BROKER_PROFILE`` (``auto`` picks ``embedded`` when
every bootstrap host is a loopback address and no TLS/SASL is configured):

``kafka``
    Apache Kafka, the production broker (:class:`BrokerProfile`). Faust's defaults,
    except where yadtq has a reason to choose:

    * **acks=all** (``producer_acks=-1``; Faust's default too, pinned here so that it
      never silently changes): a write is acknowledged once every in-sync replica has
      it. Together with ``min.insync.replicas`` (``YADTQ_MIN_INSYNC_REPLICAS``, set on
      every topic yadtq creates; the broker's default otherwise) a task accepted with
      a 202 survives the loss of a broker.
    * **Partitions and replication factor from the settings** (``YADTQ_PARTITIONS``,
      ``YADTQ_REPLICATION_FACTOR``), for the topics yadtq creates and for any topic
      Faust declares itself.
    * **Session timeout 45 s, heartbeat 3 s**, the Apache Kafka consumer's own
      defaults since 3.0, instead of Faust's 60 s / 3 s. KIP-735 raised Kafka's session
      timeout from 10 s to 45 s because transient network and load stalls, far more
      common than real client failures, caused spurious rebalances. The session
      timeout is how long a *crashed* worker's partitions, and the tasks in flight on
      them, wait before another worker takes them over (a worker that stops cleanly
      leaves the group at once), so it trades failover time against spurious
      rebalances, which cost yadtq a table recovery and can run in-flight tasks a
      second time. 45 s is inside the range brokers accept by default
      (``group.min.session.timeout.ms`` 6 s to ``group.max.session.timeout.ms``
      30 min), below Faust's request timeout (90 s; Faust refuses a longer session),
      and leaves 15 heartbeats per session (Kafka asks for at most a third). Heartbeats
      are sent from Faust's consumer thread, so busy task code does not delay them.
      ``YADTQ_SESSION_TIMEOUT`` lowers it for faster failover on a quiet, dedicated
      network (not below the broker's minimum). The rebalance timeout stays Faust's
      60 s (never below the session timeout).
    * **Credentials** from the security settings (:mod:`yadtq_app.security`).
    * **A 100 ms fetch wait** (:data:`KAFKA_FETCH_MAX_WAIT_MS`) instead of the 1,500 ms
      Faust hard-codes for its worker consumer. A Kafka fetch returns as soon as data
      arrives, so the wait never delays a task; but it is how long a fetch of idle
      partitions takes, and yadtq waits for fetch answers: a 404 (``GET`` of an unknown
      or expired id) waits for the second fetch answer after the request
      (``agents.status.caught_up_now``), and aiokafka performs a seek to the beginning
      (after every rebalance, for never-committed partitions) only once the fetch in
      flight to that broker is back. At 1,500 ms, on Kafka 4.4: a 404 took 1.5-3 s (a
      test reading 1,000 expired ids one by one would have run for an hour), the test
      that a task is found the moment it is accepted took 25 s, and the kill -9
      failover test did not finish in 90 s; at 100 ms: 0.2 s per 404, 3 s and 18 s.
      (Asking the broker for the end offset instead saves only one of the two waits:
      Kafka answers one request per connection at a time, so a ListOffsets sent by
      the worker's consumer queues behind its fetch in flight; measured 104 ms against
      206 ms per 404.)
      The price, one idle worker on a one-node Kafka, 20 s samples: 2.0-2.3 % →
      2.6-2.9 % of a core for the worker, 2.3-3.9 % → 3.4-4.8 % for the broker (ten
      empty fetches a second instead of two-thirds of one). ``YADTQ_FETCH_MAX_WAIT_MS``
      sets another.

    Nothing else of the embedded broker applies: no end-offset correction, topic
    configs sent as given.

``embedded``
    Tansu 0.6.0, the embedded development broker (:class:`EmbeddedProfile`). Three of
    its defects are handled here and nowhere else (measured figures in
    ``docs/brokers.md`` and the README):

    * **Wrong end offsets.** ListOffsets(LATEST) answers the last *batch's* first
      offset + 1, so with batched produce it falls short of the real end. Faust's table
      recovery reads up to that offset and stops early (rows silently missing after a
      restart with a fresh data dir) or raises ``ConsistencyError`` when the local
      store is ahead of it. Remedy: :func:`true_end_offsets` re-reads the tail of each
      partition and takes the high watermark of a *fetch* response, which is right.
      Producer batching stays on (``producer_max_batch_size=1`` would also fix it but
      caps a producer near 2,200 messages/s).
    * **The first group join waits session_timeout / 2.** Short session (2 s) and
      heartbeat (0.5 s) timeouts. The session is also how long a crashed worker's
      tasks wait: kill -9 to the first re-run measured 3.7 s median at 2 s (6.2 s at
      3 s; bench/RESULTS.md). Heartbeats come from Faust's consumer thread, so busy
      task code does not delay them; ``YADTQ_SESSION_TIMEOUT`` raises it for a
      machine too loaded to heartbeat within 2 s. The join delay does not depend on
      the *rebalance* timeout (measured), which is 10 s; Kafka waits that long for
      every living member to rejoin, **Tansu does not**: it forms the next generation
      about a second after the first member rejoins, without the members still in
      their revoke. Faust rejoins only once the tasks in flight on the partitions it
      gives up have finished, so a busy, healthy worker is left out and its
      partitions go to the others while its tasks still run (seen in 1 of 3 kill -9
      runs under load: the survivors ran its 2 s tasks a second time). Leases make
      the others wait for those tasks (``agents.tasks``); a long task on Kafka, past
      the rebalance timeout, needs them just the same. If the member left out is the
      group's *leader* (Tansu keeps the first member as leader), no generation forms
      at all until it rejoins: the others loop on JoinGroup/SyncGroup meanwhile.
    * **Fetch long-poll does not wake when data arrives.** Tansu 0.6.0 answers a fetch
      by reading every partition it names; if that found less than ``min_bytes`` it
      sleeps for the rest of the wait, reads every partition once more and answers
      (its ``FetchRequest::fetch`` loop, which sleeps in halves only for waits of
      250 ms and more). So a record written meanwhile waits for the rest of the wait,
      half of it on average, and each empty fetch costs the broker two reads of every
      partition asked for. Faust hard-codes ``fetch_max_wait_ms=1500`` for its worker
      consumer (up to 1.5 s per task here). The embedded profile waits 10 ms while the
      worker is idle and 3 ms while tasks flow (an agent got a message within the
      last :data:`BUSY_HOLD` s; :class:`FetchWait`, ``YADTQ_FETCH_MAX_WAIT_MS`` /
      ``YADTQ_BUSY_FETCH_MAX_WAIT_MS``): each step down costs CPU for every empty
      fetch — idle, one worker and the broker used 11 % and 19 % of a core at 10 ms,
      12–20 % and 23 % at 5 ms, 27 % and 37 % at 3 ms — which an idle worker would pay
      around the clock, while a busy one's fetches rarely come back empty. A 0 ms wait
      is refused: the loop then never runs and every fetch answers empty (a test shows
      it). Measured 2026-12-02, 200 sequential round trips submitted through Kafka,
      interleaved runs: p50 1 worker 8.6–9.4 ms at a fixed 10 ms → 6.0–6.6 ms, 2
      workers 7.9–8.6 → 6.2–7.5 ms (over HTTP unchanged, 8–10 ms); that was with the
      changelog pause below, without which the short wait's extra fetch work on two
      shared cores cancelled the gain for two workers and over HTTP. A fixed 5 ms wait
      was tried before: the kill -9 failover test timed out in 2 of 4 full runs of the
      suite; one cause of that stall was found and fixed since (events dropped at a
      rebalance were never read again: ``app.rereadable_topics``).

    * **Memory only.** A Tansu that stops has lost every topic, and the next one is
      another, empty cluster on the same address. A worker's Faust clients, left
      running, reconnect to it within a few hundred milliseconds: their metadata
      requests made it auto-create yadtq's topics with its own count (4 partitions;
      the restarted worker then refused ``tasks`` with 4 partitions where it wants
      8), and it accepted records for topics it did not have, which a worker's table
      recovery later waited for forever. So a worker holds a connection open to the
      embedded broker and restarts itself the moment it closes and the broker no
      longer accepts connections (:attr:`BrokerProfile.memory_only`,
      :meth:`yadtq_app.broker_link.BrokerWatch.watch_hangup`), instead of riding out
      ``YADTQ_BROKER_LOST_AFTER`` seconds.

    A single node replicates nothing, so no ``min.insync.replicas`` is sent to it.

One more fix applies on every broker, because the bug is Faust's (with aiokafka's
``seek_to_committed``), not the broker's: after a rebalance Faust seeks each partition
back to its committed offset, but aiokafka skips the seek when there is no committed
offset (or it is 0). Records fetched for such a partition while Faust was recovering
its tables were dropped, so without a seek they are never read again: the tasks in a
newly assigned, never-committed partition were silently lost (seen when a worker died
within its first commit interval). :class:`ConsumerThread` seeks those partitions to
their log start offsets, asked of the broker, as ``auto_offset_reset="earliest"``
promises (taking ``position()`` after ``seek_to_beginning`` instead raced a fetch
answered meanwhile, which had moved the position past the records it read: those
were taken as read, and lost).

Faust's pause of a partition is its own (it stops handing the partition's records on,
aiokafka goes on fetching them), so after recovery every fetch also asked for the
changelog partitions of the tables the worker writes, which no one reads (17 of 44
partitions of a worker's fetch here, each one read twice per fetch by the embedded
broker; a record fetched for one stayed in aiokafka's buffer for good). On every broker,
:class:`Consumer` pauses and resumes *changelog* partitions in aiokafka too, whenever
Faust does; other topics are left as they were. ``GET /health`` shows what a worker
fetches (:func:`fetch_state`).

And two fixes to what Faust commits, also on every broker (:class:`Consumer`): a commit
waits for the message at the committed offset (:func:`head_unacked`), and acks that
belong to an earlier consumer-group generation, or were recorded before the seek back
to the committed offsets that follows every rebalance, never count (:func:`stale_ack`).
Without them a commit could pass a task that was still running, or that a stream
dropped unprocessed at a rebalance, and a crash then lost it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, List, Mapping, Optional

import aiokafka
from aiokafka.protocol.group import JoinGroupRequest
from faust import streams as faust_streams
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from .errors import ConfigurationError

if TYPE_CHECKING:  # pragma: no cover
    from .settings import Settings

__all__ = ["BrokerProfile", "EmbeddedProfile", "profile_for", "true_end_offsets", "EmbeddedTransport", "head_unacked",
           "stale_ack", "ack_through_consumer", "committed_offset", "ReadOffsets", "RecoveryWatchdog", "FetchWait",
           "adapt_fetch_wait",
           "fetch_state", "last_fetched_ms"]

UNKNOWN_MEMBER_ID = JoinGroupRequest.UNKNOWN_MEMBER_ID

#: What Faust hard-codes for its worker consumer.
FAUST_FETCH_MAX_WAIT_MS = 1500
#: The kafka profile's fetch wait (ms): how long a fetch of idle partitions takes (see
#: the module docs).
KAFKA_FETCH_MAX_WAIT_MS = 100
#: How long a worker counts as busy after its agents last got a message (s): its fetches
#: wait the busy fetch wait meanwhile (see :class:`FetchWait`).
BUSY_HOLD = 1.0
#: Faust's defaults for ``broker_request_timeout`` and ``broker_rebalance_timeout`` (s).
FAUST_REQUEST_TIMEOUT = 90.0
FAUST_REBALANCE_TIMEOUT = 60.0
#: The Apache Kafka consumer's defaults since 3.0 (KIP-735): session.timeout.ms and
#: heartbeat.interval.ms, in seconds.
KAFKA_SESSION_TIMEOUT = 45.0
KAFKA_HEARTBEAT_INTERVAL = 3.0

#: How often a seek back to dropped messages is tried while a rebalance is under way (s).
REREAD_DELAY = 0.1
#: How long the message at a seek position may lag behind a later one (s), and how many
#: times the partition is read again for it (see ``Consumer.delivered``).
EXPECT_GRACE = 0.5
EXPECT_TRIES = 3

logger = logging.getLogger(__name__)


class BrokerProfile:
    """Apache Kafka: Faust options and transport for a production cluster (see the module docs)."""

    name = "kafka"
    session_timeout = KAFKA_SESSION_TIMEOUT
    heartbeat_interval = KAFKA_HEARTBEAT_INTERVAL
    rebalance_timeout = FAUST_REBALANCE_TIMEOUT
    fetch_max_wait_ms: Optional[int] = KAFKA_FETCH_MAX_WAIT_MS
    #: The fetch wait while work flows; ``None``: the same as when idle.
    busy_fetch_max_wait_ms: Optional[int] = None
    #: A broker that loses every topic when it stops: a worker restarts as soon as
    #: the broker closes its connections (no ``YADTQ_BROKER_LOST_AFTER`` grace).
    memory_only = False

    def __init__(self, settings: "Settings") -> None:
        self.settings = settings

    def timeouts(self) -> tuple[float, float]:
        """``(session, heartbeat)`` in seconds: the settings' if set, else this profile's."""
        s = self.settings
        session = s.session_timeout if s.session_timeout is not None else self.session_timeout
        heartbeat = s.heartbeat_timeout if s.heartbeat_timeout is not None else self.heartbeat_interval
        if not 0 < heartbeat < session:
            raise ConfigurationError(
                f"the consumer heartbeat ({heartbeat:g} s, YADTQ_CONSUMER_HEARTBEAT) must be positive and "
                f"shorter than the session timeout ({session:g} s, YADTQ_SESSION_TIMEOUT)")
        if session > FAUST_REQUEST_TIMEOUT:
            raise ConfigurationError(
                f"YADTQ_SESSION_TIMEOUT={session:g} is longer than Faust's broker request timeout "
                f"({FAUST_REQUEST_TIMEOUT:g} s), which Faust does not allow")
        return session, heartbeat

    def faust_options(self) -> dict[str, Any]:
        """Faust settings this profile decides (merged over yadtq's general ones)."""
        s = self.settings
        session, heartbeat = self.timeouts()
        return {
            "broker_session_timeout": session,
            "broker_heartbeat_interval": heartbeat,
            "broker_rebalance_timeout": max(session, self.rebalance_timeout),
            "producer_acks": -1,
            "topic_partitions": s.partitions,
            "topic_replication_factor": s.replication_factor,
        }

    def topic_config(self) -> dict[str, str]:
        """Topic configs for every topic yadtq creates (on top of e.g. compaction)."""
        n = self.settings.min_insync_replicas
        return {} if n is None else {"min.insync.replicas": str(n)}

    def fetch_waits(self) -> tuple[int, int]:
        """``(idle, busy)`` fetch waits in ms: the settings' if set, else this profile's.

        The busy wait never exceeds the idle one (an idle wait set below the profile's
        busy wait is used for both)."""
        s = self.settings
        idle = s.fetch_max_wait_ms if s.fetch_max_wait_ms is not None else \
            (self.fetch_max_wait_ms if self.fetch_max_wait_ms is not None else FAUST_FETCH_MAX_WAIT_MS)
        busy = s.busy_fetch_max_wait_ms if s.busy_fetch_max_wait_ms is not None else self.busy_fetch_max_wait_ms
        return idle, idle if busy is None else min(busy, idle)

    def fixes_end_offsets(self) -> bool:
        """Whether end offsets are re-read from fetches (:func:`true_end_offsets`):
        ``YADTQ_FIX_END_OFFSETS`` if set, else this profile's choice (off on Kafka)."""
        return bool(self.settings.fix_end_offsets)

    def transport_class(self) -> type:
        """The Faust transport to use (Faust's aiokafka transport with yadtq's consumer fixes)."""
        idle, busy = self.fetch_waits()
        return _transport_with(fetch_max_wait_ms=idle, busy_fetch_max_wait_ms=busy,
                               fix_end_offsets=self.fixes_end_offsets())


class EmbeddedProfile(BrokerProfile):
    """Tansu, the embedded development broker (see the module docs)."""

    name = "embedded"
    session_timeout = 2.0
    heartbeat_interval = 0.5
    rebalance_timeout = 10.0
    fetch_max_wait_ms = 10
    busy_fetch_max_wait_ms = 3
    memory_only = True

    def topic_config(self) -> dict[str, str]:
        return {}  # one node: nothing is replicated, so min.insync.replicas means nothing

    def fetch_waits(self) -> tuple[int, int]:
        idle, busy = super().fetch_waits()
        if busy < 1:
            # The embedded broker's fetch loop runs only while the time waited is below
            # the wait asked for: with 0 it reads nothing at all, and a worker never sees a task.
            raise ConfigurationError(
                f"a fetch wait of {busy} ms (YADTQ_FETCH_MAX_WAIT_MS / YADTQ_BUSY_FETCH_MAX_WAIT_MS) makes the "
                "embedded broker answer every fetch empty; use 1 ms or more")
        return idle, busy

    def fixes_end_offsets(self) -> bool:
        fix = self.settings.fix_end_offsets
        return fix if fix is not None else True


def profile_for(settings: "Settings") -> BrokerProfile:
    """The profile in force for these settings."""
    if settings.resolved_profile == "embedded":
        return EmbeddedProfile(settings)
    return BrokerProfile(settings)


async def true_end_offsets(bootstrap_servers: str, listed: Mapping[TP, int], *, timeout: float = 10.0,
                           client_options: Optional[Mapping[str, Any]] = None) -> dict[TP, int]:
    """Correct end offsets as reported by ListOffsets, using fetch high watermarks.

    For each partition whose listed end is above 0, fetch from ``listed - 1`` (a record
    that exists on any broker) and read the high watermark of the fetch response. The
    answer is never below the listed one, so on a correct broker this is a no-op.
    ``client_options`` (security settings) go to the consumer that reads them.
    """
    todo = {tp: off for tp, off in listed.items() if off > 0}
    result = dict(listed)
    if not todo:
        return result
    consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False,
                                         group_id=None, fetch_max_wait_ms=10, max_partition_fetch_bytes=65536,
                                         **dict(client_options or {}))
    await consumer.start()
    try:
        tps = [aiokafka.TopicPartition(tp.topic, tp.partition) for tp in todo]
        consumer.assign(tps)
        for tp, off in zip(tps, todo.values()):
            consumer.seek(tp, off - 1)
        deadline = time.monotonic() + timeout
        pending = set(tps)
        while pending and time.monotonic() < deadline:
            await consumer.getmany(*pending, timeout_ms=100)
            for tp in list(pending):
                hw = consumer.highwater(tp)
                if hw is not None:
                    pending.discard(tp)
        if pending:
            logger.warning("could not read the high watermark of %s; keeping the listed end offsets",
                           sorted(pending))
        for tp in tps:
            key = TP(tp.topic, tp.partition)
            hw = consumer.highwater(tp)
            if hw is not None and hw > result[key]:
                logger.info("end offset of %s-%s corrected from %d to %d (embedded broker)",
                            tp.topic, tp.partition, result[key], hw)
                result[key] = hw
    finally:
        await consumer.stop()
    return result


def ack_through_consumer() -> None:
    """Make every stream ack go through ``Consumer.ack`` (the class below overrides it).

    Faust's compiled stream iterator (``faust._cython.streams.StreamIterator.after``)
    inlines ``Message.ack`` and ``Consumer.ack`` instead of calling them, so with it
    none of this module's ack handling ran for the agents' messages: acks of an earlier
    generation counted, dropped messages were never read again, and the set of messages
    being processed only grew — the stream watchdog, which leaves such partitions alone,
    never fired (seen: a survivor whose events partitions stopped after a worker froze,
    114 s without a record). Faust's pure-Python iterator is used instead.
    """
    faust_streams._CStreamIterator = None


def committed_offset(consumer: Any, tp: TP) -> Optional[int]:
    """The offset ``consumer`` last committed for ``tp``, else where its reading began
    (the floor no commit passes); ``None`` if neither is known yet."""
    committed = consumer._committed_offset.get(tp)
    if committed is None:
        committed = getattr(consumer, "_yadtq_floor", {}).get(tp)
    return committed  # type: ignore[no-any-return]


def _kafka_consumer(consumer: Any) -> Optional[aiokafka.AIOKafkaConsumer]:
    """The aiokafka consumer inside Faust's worker ``consumer`` (``None`` before it starts)."""
    return getattr(getattr(consumer, "_thread", None), "_consumer", None)


def _set_fetching(consumer: Any, tps: List[aiokafka.TopicPartition], fetch: bool) -> None:
    """Pause or resume ``tps`` in aiokafka (in the consumer thread's loop)."""
    kafka = _kafka_consumer(consumer)
    if kafka is None:
        return
    subscription = kafka._subscription
    for tp in tps:
        if subscription.is_assigned(tp):  # gone since, in a rebalance: nothing to do
            (kafka.resume if fetch else kafka.pause)(tp)


class FetchWait:
    """How long a worker's fetches may wait at the broker for data (ms).

    ``busy_ms`` while the worker's agents are getting messages (one within
    :data:`BUSY_HOLD` seconds: ``Consumer.delivered`` sets :attr:`last_work`),
    ``idle_ms`` otherwise. On a broker whose fetch wakes when data arrives (Apache
    Kafka) the wait costs no latency and the two are the same. The embedded broker's
    fetch does not wake: a task written meanwhile waits for the rest of the wait, so
    a short wait takes milliseconds off every round trip — but costs the broker and
    the worker CPU for every empty fetch, which an idle worker pays around the clock.
    """

    __slots__ = ("idle_ms", "busy_ms", "hold", "last_work")

    def __init__(self, idle_ms: int, busy_ms: int, hold: float = BUSY_HOLD) -> None:
        self.idle_ms = idle_ms
        self.busy_ms = busy_ms
        self.hold = hold
        #: ``time.monotonic()`` when an agent last got a message.
        self.last_work = float("-inf")

    def current(self) -> int:
        """The wait for the next fetch."""
        return self.busy_ms if time.monotonic() - self.last_work < self.hold else self.idle_ms


def adapt_fetch_wait(consumer: aiokafka.AIOKafkaConsumer, wait: FetchWait) -> bool:
    """Give every fetch request of a started ``consumer`` the wait ``wait`` says.

    aiokafka reads one fixed wait when it builds each fetch request
    (``Fetcher._get_actions_per_node``, aiokafka 0.14); this sets it just before. Runs
    in the consumer's own thread. False (and the fixed wait stays) if aiokafka's
    fetcher is not the one this was written for.
    """
    fetcher = getattr(consumer, "_fetcher", None)
    plan = getattr(fetcher, "_get_actions_per_node", None)
    if plan is None or not hasattr(fetcher, "_fetch_max_wait_ms"):
        logger.warning("aiokafka's fetcher has changed: the fetch wait stays %d ms", wait.idle_ms)
        return False

    def plan_with_wait(assignment: Any) -> Any:
        fetcher._fetch_max_wait_ms = wait.current()
        return plan(assignment)

    fetcher._get_actions_per_node = plan_with_wait
    return True


def last_fetched_ms(consumer: Any, tp: TP) -> Optional[int]:
    """When the worker consumer last had a fetch answer for ``tp`` (ms since the epoch,
    aiokafka's ``last_poll_timestamp``; set for every answer, records or none); ``None``
    if it has had none or does not hold ``tp``."""
    kafka = _kafka_consumer(consumer)
    if kafka is None:
        return None
    try:
        stamp = kafka.last_poll_timestamp(aiokafka.TopicPartition(tp.topic, tp.partition))
    except (AssertionError, KeyError, AttributeError):  # not assigned (any more)
        return None
    return int(stamp) if stamp is not None else None


def fetch_state(consumer: Any) -> dict[str, Any]:
    """What a worker's consumer fetches now (for ``GET /health``): the wait its fetch
    requests carry (ms), how many partitions they ask for, changelogs among them, and
    how many messages agents got and have not acked."""
    kafka = _kafka_consumer(consumer)
    fetcher = getattr(kafka, "_fetcher", None)
    if fetcher is None:
        return {}
    try:
        subscription = kafka._subscription
        paused = subscription.paused_partitions()
        fetching = [tp for tp in subscription.assigned_partitions() if tp not in paused]
    except Exception:  # noqa: BLE001 - the assignment changed under us (a rebalance): ask again
        return {}
    changelogs = consumer.app.tables.changelog_topics
    return {"wait_ms": fetcher._fetch_max_wait_ms, "partitions": len(fetching),
            "changelog_partitions": sum(tp.topic in changelogs for tp in fetching),
            "messages_in_process": len(getattr(consumer, "processing", ()))}


def _transport_with(*, fetch_max_wait_ms: int, busy_fetch_max_wait_ms: int, fix_end_offsets: bool) -> type:
    """A Faust aiokafka transport whose worker consumer uses these remedies."""
    ack_through_consumer()

    class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
            consumer = super()._create_worker_consumer(transport)
            # Faust passes a fixed fetch_max_wait_ms=1500; there is no setting for it.
            consumer._fetch_max_wait_ms = fetch_max_wait_ms
            return consumer

        async def on_start(self) -> None:
            await super().on_start()
            if busy_fetch_max_wait_ms != fetch_max_wait_ms and self._consumer is not None:
                adapt_fetch_wait(self._consumer, self.consumer.fetch_wait)  # type: ignore[attr-defined]
            if self._consumer is not None:
                track_heartbeats(self._consumer, self.consumer.heartbeats)  # type: ignore[attr-defined]

        def membership_lost(self) -> bool:
            """True once the broker no longer knows this consumer (evicted, not yet rejoined).

            Its offset commits fail from then on, so what it acks is not committed.
            """
            consumer = self._consumer
            if consumer is None:
                return False
            coordinator = getattr(consumer, "_coordinator", None)
            return coordinator is not None and coordinator.member_id == UNKNOWN_MEMBER_ID

        async def seek_to_committed(self) -> Mapping[TP, int]:
            return await self.call_thread(self._seek_to_committed_or_start)  # type: ignore[no-any-return]

        async def _seek_to_committed_or_start(self) -> Mapping[TP, int]:
            consumer = self._ensure_consumer()
            committed: Mapping[TP, int] = await consumer.seek_to_committed()
            if self.app.conf.consumer_auto_offset_reset == "earliest":
                changelogs = self.app.tables.changelog_topics
                never = [tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs]
                if never:
                    # The log start offsets, asked of the broker: not the position after a
                    # seek_to_beginning, which a fetch answered meanwhile has already moved
                    # past the records it read (they were then taken as read, and lost).
                    starts = await consumer.beginning_offsets(never)
                    committed = dict(committed)
                    for tp in never:  # where reading starts: the floor commits must not pass
                        consumer.seek(tp, starts[tp])
                        committed[tp] = starts[tp]
            return committed

        async def _highwaters(self, partitions: List[TP]) -> Mapping[TP, int]:
            listed = await super()._highwaters(partitions)
            if not fix_end_offsets or self.consumer.in_transaction:
                return listed
            servers = faust_aiokafka.server_list(self.transport.url, self.transport.default_port)
            conf = self.app.conf
            auth = faust_aiokafka.credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context)
            return await true_end_offsets(_join(servers), listed, client_options=auth)

    class Consumer(faust_aiokafka.Consumer):
        """Faust's consumer with a correct commit point (see :func:`head_unacked` and
        :func:`stale_ack`)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._read_offset = ReadOffsets()
            #: Where reading resumed after the last seek: the floor no commit may pass.
            self._yadtq_floor: dict[TP, int] = {}
            #: Seek positions whose message has not reached the agent yet: (offset, tries).
            self._yadtq_expect: dict[TP, tuple[int, int]] = {}
            #: Partitions to seek back to (lowest offset each), and the task doing it.
            self._yadtq_reread: dict[TP, int] = {}
            self._yadtq_reread_task: Optional[asyncio.Future[None]] = None
            #: The fetch wait of the worker consumer, by how busy the agents are.
            self.fetch_wait = FetchWait(fetch_max_wait_ms, busy_fetch_max_wait_ms)
            #: When an agent last got a message of each partition (monotonic s), and the
            #: messages agents got and have not acked yet (tp, offset): being processed.
            self.delivered_at: dict[TP, float] = {}
            self.processing: set[tuple[TP, int]] = set()
            #: When the group coordinator last answered a heartbeat.
            self.heartbeats = Heartbeats()

        def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

        def pause_partitions(self, tps: Iterable[TP]) -> None:
            tps = set(tps)
            super().pause_partitions(tps)
            self._fetch_changelogs(tps, False)

        def resume_partitions(self, tps: Iterable[TP]) -> None:
            tps = set(tps)
            super().resume_partitions(tps)
            self._fetch_changelogs(tps, True)

        def _fetch_changelogs(self, tps: Iterable[TP], fetch: bool) -> None:
            """Stop (or start again) fetching the changelog partitions among ``tps``.

            Faust's pause is only its own: it stops handing a paused partition's
            records on, but aiokafka goes on fetching it. A table's changelog is paused
            for as long as this worker writes it (the partition is active here, after
            recovery), so every fetch asked for a dozen or more partitions no one reads
            — on the embedded broker, whose fetch reads every partition twice per
            request, a quarter of its idle CPU; and a record fetched for one stays in
            aiokafka's buffer for good. Only changelogs are paused in aiokafka as well:
            what Faust pauses of the other topics during a rebalance is read again from
            the committed offsets afterwards, as before (see :meth:`perform_seek`).
            """
            changelogs = self.app.tables.changelog_topics
            chosen = [aiokafka.TopicPartition(tp.topic, tp.partition) for tp in tps if tp.topic in changelogs]
            thread = getattr(self, "_thread", None)
            if not chosen or thread is None:
                return
            thread.thread_loop.call_soon_threadsafe(_set_fetching, self, chosen, fetch)

        async def perform_seek(self) -> None:
            await super().perform_seek()
            floor = self._yadtq_floor
            rereadable = getattr(self.app, "rereadable_topics", ())
            for tp, offset in self._read_offset.items():
                if offset is not None and offset >= 0:
                    floor[tp] = offset
                    if tp.topic in rereadable:
                        self._read_offset.hold(tp, offset)
                        self._expect(tp, offset)
            # Reading starts again at the committed offsets: what was acked or taken
            # for a gap before the seek says nothing about the messages read from here.
            with ack_lock:
                for tp in self.assignment():
                    self._acked.pop(tp, None)
                    self._acked_index.pop(tp, None)
                    self._gap.pop(tp, None)

        def ack(self, message: Any) -> bool:
            self.processing.discard((message.tp, message.offset))
            # While flow control is off (a rebalance is under way, until its seek back to
            # the committed offsets is done), Faust's streams drop what they read and ack
            # it unprocessed; those messages are read again once the flow resumes.
            if stale_ack(message.generation_id, self.app.consumer_generation_id) \
                    or not self.app.flow_control.is_active():
                with ack_lock:
                    message.acked = True
                    self._unacked_messages.discard(message)
                    notify(self._waiting_for_ack)
                if message.topic in getattr(self.app, "rereadable_topics", ()):
                    self.loop.call_soon_threadsafe(self._reread_later, message.tp, message.offset)
                return False
            return super().ack(message)  # type: ignore[no-any-return]

        async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
            if self._read_offset.held(tp):
                return  # a message read before the seek, not a hole (see ReadOffsets)
            await super()._add_gap(tp, offset_from, offset_to)

        def _expect(self, tp: TP, offset: int, tries: int = 0) -> None:
            self._yadtq_expect[tp] = (offset, tries)

        def delivered(self, tp: TP, offset: int) -> None:
            """The task agent got the message at ``offset`` of ``tp``.

            After a seek back to the committed offset, the first message the agent gets
            must be the one at that offset. Faust has been seen to lose it (read right
            after the seek, while the worker finished its rebalance, and never handed
            to the agent), going on with the next: then, if it does not turn up within
            :data:`EXPECT_GRACE`, the partition is read again from there.

            It also marks the worker busy, for the fetch wait (:class:`FetchWait`).
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
            while pending:
                await asyncio.sleep(REREAD_DELAY)
                if self.app.rebalancing or not self.app.flow_control.is_active() or not self.flow_active:
                    continue  # the rebalance's own seek comes first
                todo = dict(pending)
                pending.clear()
                try:
                    assigned = self.assignment()
                    for tp, offset in todo.items():
                        committed = self._committed_offset.get(tp)
                        if tp in assigned and (committed is None or offset >= committed):
                            logger.info("%s-%d: reading again from offset %d", tp.topic, tp.partition, offset)
                            await self.seek(tp, offset)
                except Exception:  # noqa: BLE001 - the next rebalance seeks anyway
                    logger.exception("could not seek back to messages dropped unprocessed: %s", todo)

        async def wait_empty(self) -> None:
            """Faust's wait for every message being processed, except, during a
            rebalance, the task messages whose attempts are leased (``agents.tasks``):
            they run on across the rebalance and their owner waits for the outcome, so
            the group need not wait for them (a busy survivor delayed every failover by
            up to a task's length)."""
            app = self.app
            if not app.revoking or app.should_stop:
                await super().wait_empty()
                return
            while not self.should_stop and any(not app.lease_covers(m) for m in self._unacked_messages):
                await self.commit()
                await self._wait_for_ack(timeout=1)
                self._clean_unacked_messages()
            await self.commit_and_end_transactions()

        def _new_offset(self, tp: TP) -> Optional[int]:
            committed = self._committed_offset[tp]
            if committed is None:
                committed = self._yadtq_floor.get(tp)
            if head_unacked(committed, self._acked[tp], self._acked_index[tp], self._gap[tp]):
                return None
            return super()._new_offset(tp)  # type: ignore[no-any-return]

    class Transport(faust_aiokafka.Transport):
        pass

    Transport.Consumer = Consumer
    return Transport


def head_unacked(committed: Optional[int], acked: Any, acked_index: Any, gap: Any) -> bool:
    """Whether the next offset to commit from (``committed``) is still unacked.

    Faust 0.15.3's ``Consumer._new_offset`` commits the first run of consecutive acked
    offsets, checking only that the run starts *more than one* offset above the
    committed one (and not at all while nothing was committed, or the committed
    offset is 0). With agent concurrency that is a lost task: the message at the
    committed offset is still running while the ones behind it finish, Faust commits
    past it, and a crash now skips it for good. The commit must wait until the message
    at the committed offset is acked (or is a known gap, such as a transaction marker).
    A Faust defect, not a broker one: the fix applies on every broker.
    """
    if committed is None or not acked:
        return False
    return committed not in acked_index and not gap.at(committed)


class ReadOffsets(dict):  # type: ignore[type-arg]
    """Faust's per-partition read offsets, which a read from before a seek cannot move on.

    After a rebalance Faust seeks each partition back to its committed offset and sets
    its read offset there, but its fetch loop may still be delivering a batch read
    before the seek; each of those messages moved the read offset on again, so when the
    seek's own reads came back, the messages between the committed offset and the stale
    batch's last one were dropped as already read (``Consumer._drain_messages``), and
    the gap between them was even counted as acked. A partition held here keeps its
    read offset at the seek position until the message there is read again.
    """

    def __init__(self) -> None:
        super().__init__()
        self._held: dict[Any, int] = {}

    def __missing__(self, key: Any) -> None:  # Faust's was a defaultdict(lambda: None)
        return None

    def __setitem__(self, tp: Any, offset: Optional[int]) -> None:
        held = self._held.get(tp)
        if held is not None and offset is not None:
            if offset > held:
                return  # read before the seek: the seek's reads deliver it again
            if offset == held:
                del self._held[tp]
        super().__setitem__(tp, offset)

    def pop(self, tp: Any, *default: Any) -> Any:
        self._held.pop(tp, None)
        return super().pop(tp, *default)

    def hold(self, tp: Any, offset: int) -> None:
        """``tp`` was just seeked to ``offset``."""
        super().__setitem__(tp, offset)
        self._held[tp] = offset

    def held(self, tp: Any) -> bool:
        return tp in self._held


class RecoveryWatchdog:
    """Gets Faust's changelog recovery going again when a partition stops getting records.

    Seen in CI: a worker given partitions after a rebalance began recovering their status
    rows and received not one changelog record for them in a minute (Faust only logs "No
    event received for active tp ... since recovery start" every 5 s, and waits forever,
    holding the partitions). Caught here too, by this watchdog: recovery had read nothing
    of a partition while the consumer's fetch position was already *past* its end — the
    records had been fetched and dropped before recovery took them (fetched while the
    rebalance was still setting recovery up). A partition that still has records to read
    and got none for :attr:`stall` seconds is sought again to where its recovery stands
    and resumed (what the consumer knew is logged); that is harmless if it was merely
    slow, as recovery applies a record twice without effect. If :attr:`give_up` seconds
    pass without a record all the same, the worker stops with an error rather than hold
    partitions it will never serve: its partitions go to the others, and a supervisor
    (compose's restart policy) starts it again.
    """

    def __init__(self, app: Any, *, stall: float = 3.0, give_up: float = 60.0) -> None:
        self.app = app
        self.stall = stall
        self.give_up = give_up
        self._kicked: dict[TP, float] = {}

    async def check(self) -> None:
        """Call every second or so."""
        recovery = self.app.tables.recovery
        started = recovery._recovery_started_at
        if not recovery.in_recovery or started is None:
            self._kicked.clear()
            return
        now = time.monotonic()
        received = recovery._active_events_received_at
        for key, remaining in recovery.active_remaining().items():
            if remaining <= 0:
                continue
            # Recovery's keys can be aiokafka's TopicPartition (equal to a TP, but not
            # one): they come from ListOffsets answers. Faust's consumer asserts that its
            # active partitions are TPs, so one resumed as is crashed recovery (seen on
            # Kafka, where the end offsets are aiokafka's answer unchanged).
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
                 f"{consumer._read_offset.get(tp)}, paused {tp in getattr(consumer, '_paused_partitions', ())}; "
                 f"no record for {quiet:.0f} s")
        if quiet >= self.give_up:
            logger.error("%s: table recovery is stuck; stopping the worker", state)
            await self.app.crash(RuntimeError(f"table recovery stuck on {tp.topic}-{tp.partition}"))
            return
        logger.warning("%s: seeking it again", state)
        await consumer.seek(tp, max(offset, 0))
        consumer.resume_partitions([tp])


async def unconfirmed_reason(app: Any, topic: str, key: bytes, exc: BaseException, *,
                             timeout: float = 2.0) -> str:
    """Why the broker did not confirm a record keyed ``key`` for ``topic``: the in-sync
    replicas of its partition against ``min.insync.replicas`` when fresh metadata shows
    too few, else what was raised (a timeout: brokers unreachable or too few replicas;
    with two of three KRaft nodes down the quorum is lost and the metadata still lists
    the old replicas as in sync)."""
    what = ("no broker confirmed it in time: too few brokers up, or too few in-sync replicas for acks=all"
            if isinstance(exc, asyncio.TimeoutError) else repr(exc))
    try:
        producer = app.producer._ensure_producer()
        await asyncio.wait_for(producer.client.force_metadata_update(), timeout)
        partition = app.producer.key_partition(topic, key).partition
        meta = producer.client.cluster._partitions[topic][partition]
    except Exception:  # noqa: BLE001 - the reason is advice; the answer is a 503 anyway
        return what
    needed = app.settings.min_insync_replicas
    if needed is not None and len(meta.isr) < needed:
        return f"not enough in-sync replicas: {len(meta.isr)} of the {needed} needed for partition {partition}"
    return what


class Heartbeats:
    """When the consumer's group heartbeat last succeeded (monotonic s; written by the
    consumer thread, read by the agents)."""

    def __init__(self) -> None:
        self.last_ok = time.monotonic()

    def age(self) -> float:
        return time.monotonic() - self.last_ok


def track_heartbeats(consumer: aiokafka.AIOKafkaConsumer, heartbeats: Heartbeats) -> None:
    """Record each successful group heartbeat of ``consumer`` in ``heartbeats``.

    A worker cut off from the broker (a network fault) keeps handing the tasks it had
    fetched to its agents, and the group gives its partitions to others after the
    session timeout: what it starts meanwhile runs twice. With this, the agents hold
    back once heartbeats stop succeeding (``YadtqApp.may_act_on``).
    """
    coordinator = consumer._coordinator
    beat = coordinator._do_heartbeat

    async def do_heartbeat() -> bool:
        ok: bool = await beat()
        if ok:
            heartbeats.last_ok = time.monotonic()
        return ok

    coordinator._do_heartbeat = do_heartbeat


class StreamWatchdog:
    """Reads a task or events partition again when it stalls: records are left to read
    or finish (its committed offset is below its end) but none is being processed and
    none reached an agent for :attr:`stall` seconds.

    Seen once under a CPU hog, after the generation that followed a busy worker's
    revoke: both survivors idle for 80 s with statuses not final, the records fetched
    and dropped by Faust on their way to the agents. A partition with a message being
    processed is never touched, nor any while every task slot is taken (backpressure:
    messages wait their turn); a stalled one is sought back to its committed offset, which at worst reads a few
    records twice (the task agent skips what its status row says is done).
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
            last = max(consumer.delivered_at.get(tp, 0.0), self._kicked.get(tp, 0.0), since)
            if now - last < self.stall:
                continue
            self._kicked[tp] = now
            out[tp] = committed
        return out

    async def check(self) -> None:
        """Call every second or so."""
        for tp, offset in self.stalled().items():
            logger.warning("%s-%d: records up to offset %s are left, none is being processed and none reached "
                           "an agent for %.0f s; reading it again from offset %d", tp.topic, tp.partition,
                           self.app.consumer.highwater(tp), self.stall, offset)
            self.app.consumer.reread(tp, offset)


def stale_ack(message_generation: Optional[int], current_generation: Optional[int]) -> bool:
    """Whether an ack is of a message fetched in an earlier consumer-group generation.

    Faust acks a message when its stream is done with it, and also when the stream
    *drops* it unprocessed because a rebalance began (flow control off, or the
    generation changed: ``Stream._c_aiter``'s skipped value). An ack that lands after
    the rebalance counted towards the new generation's commits, which could then move
    past a message nobody processed, or one still running: lost if the worker then
    dies. Such messages are read again from the committed offset after the rebalance,
    so :class:`Consumer` drops acks of an earlier generation and every ack made while
    flow control is off, and forgets, when it seeks back to the committed offsets,
    every ack and read gap recorded before the seek (Faust records a gap when a read
    skips offsets, counting the skipped offsets — and the message just read — as
    acked). Seen: a worker given a partition at a rebalance read its first message
    while its flow was still off, the stream dropped and acked it, and the commit that
    followed skipped that task for good. Not counting the ack keeps the commit from
    passing it, but the worker that dropped it would still never read it again if the
    rebalance's seek had already happened (seen too: the new owner of a crashed
    worker's partition went on from the message after the task it should have re-run).
    So for the topics the app names in ``rereadable_topics`` (the task topic, whose
    messages the task agent handles idempotently, and the events topic, whose events
    the status agent folds idempotently) the consumer seeks back to a message dropped
    that way once the flow is on again. Seen for events (before they were rereadable):
    the outcomes a busy worker sent through the events topic during its revoke were
    dropped so by their partitions' new owners, whose rows then stayed ``processing``.
    """
    return message_generation is not None and current_generation is not None \
        and message_generation != current_generation


def _join(servers: Iterable[str] | str) -> str:
    return servers if isinstance(servers, str) else ",".join(servers)


EmbeddedTransport = _transport_with(fetch_max_wait_ms=EmbeddedProfile.fetch_max_wait_ms,
                                   busy_fetch_max_wait_ms=EmbeddedProfile.busy_fetch_max_wait_ms, fix_end_offsets=True)
