"""What a worker's consumer fetches, and how long each fetch waits at the broker.

:class:`FetchWait` picks the wait (short while tasks flow, longer while idle),
:func:`adapt_fetch_wait` puts it into each fetch request, :func:`set_fetching` pauses
changelog partitions in aiokafka, and :func:`fetch_state` / :func:`last_fetched_ms`
report what is fetched. Why and what it costs: ``docs/brokers.md``, "Fetch waits".
"""

from __future__ import annotations

import logging
import time
from typing import Any, List, Optional

import aiokafka
from faust.types import TP

from . import private

__all__ = ["FAUST_FETCH_MAX_WAIT_MS", "KAFKA_FETCH_MAX_WAIT_MS", "KAFKA_BUSY_FETCH_MAX_WAIT_MS", "BUSY_HOLD",
           "FetchWait", "adapt_fetch_wait", "kafka_consumer", "set_fetching", "last_fetched_ms", "fetch_state"]

logger = logging.getLogger(__name__)

#: What Faust hard-codes for its worker consumer (ms).
FAUST_FETCH_MAX_WAIT_MS = 1500
#: The kafka profile's fetch wait (ms): how long a fetch of idle partitions is held at
#: the broker (nothing waits behind it: ``lanes``).
KAFKA_FETCH_MAX_WAIT_MS = 1000
#: The kafka profile's fetch wait while tasks flow (ms): how long a partition whose
#: fetched records were just taken may wait for a fetch held for the others.
KAFKA_BUSY_FETCH_MAX_WAIT_MS = 20
#: How long a worker counts as busy after its agents last got a message (s): its fetches
#: wait the busy fetch wait meanwhile (see :class:`FetchWait`).
BUSY_HOLD = 1.0


class FetchWait:
    """How long a worker's fetches may wait at the broker for data (ms).

    ``busy_ms`` while the worker's agents are getting messages (one within ``hold``
    seconds: ``Consumer.delivered`` sets :attr:`last_work`), ``idle_ms`` otherwise.
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

    Sets the wait just before aiokafka builds each round of fetch requests, on the
    consumer's loop. False (and the fixed wait stays) if aiokafka's fetcher is
    not the one this was written for.
    """
    fetcher = private.consumer_fetcher(consumer)
    plan = private.fetch_planner(fetcher)
    if plan is None:
        logger.warning("aiokafka's fetcher has changed: the fetch wait stays %d ms", wait.idle_ms)
        return False

    def plan_with_wait(assignment: Any) -> Any:
        private.set_fetcher_wait_ms(fetcher, wait.current())
        return plan(assignment)

    private.replace_fetch_planner(fetcher, plan_with_wait)
    return True


def kafka_consumer(consumer: Any) -> Optional[aiokafka.AIOKafkaConsumer]:
    """The aiokafka consumer inside Faust's worker ``consumer`` (``None`` before it starts)."""
    return private.thread_consumer(private.consumer_thread(consumer))


def set_fetching(consumer: Any, tps: List[aiokafka.TopicPartition], fetch: bool) -> None:
    """Pause or resume ``tps`` in aiokafka (call on the consumer's loop);
    partitions no longer assigned are skipped. A resumed partition is fetched at once,
    not after the fetch in flight."""
    thread = private.consumer_thread(consumer)
    kafka = private.thread_consumer(thread)
    if kafka is None:
        return
    subscription = private.consumer_subscription(kafka)
    changed = False
    for tp in tps:
        if subscription.is_assigned(tp):  # gone since, in a rebalance: nothing to do
            (kafka.resume if fetch else kafka.pause)(tp)
            changed = True
    if fetch and changed and hasattr(thread, "wake_fetcher"):
        thread.wake_fetcher()


def last_fetched_ms(consumer: Any, tp: TP) -> Optional[int]:
    """When the worker consumer last had a fetch answer for ``tp`` (ms since the epoch,
    aiokafka's ``last_poll_timestamp``; set for every answer, records or none); ``None``
    if it has had none or does not hold ``tp``."""
    kafka = kafka_consumer(consumer)
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
    how many messages agents got and have not acked; ``{}`` if not known now."""
    kafka = kafka_consumer(consumer)
    fetcher = private.consumer_fetcher(kafka)
    if fetcher is None:
        return {}
    try:
        subscription = private.consumer_subscription(kafka)
        paused = subscription.paused_partitions()
        fetching = [tp for tp in subscription.assigned_partitions() if tp not in paused]
    except Exception:  # noqa: BLE001 - the assignment changed under us (a rebalance): ask again
        return {}
    changelogs = consumer.app.tables.changelog_topics
    return {"wait_ms": private.fetcher_wait_ms(fetcher), "partitions": len(fetching),
            "changelog_partitions": sum(tp.topic in changelogs for tp in fetching),
            "messages_in_process": len(getattr(consumer, "processing", ()))}
