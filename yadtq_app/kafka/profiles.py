"""Broker profiles: where the differences between brokers live.

``kafka`` (:class:`BrokerProfile`) is Apache Kafka, the production broker: Faust's
defaults except acks=all, partitions and replication from the settings, Kafka's own
session and heartbeat timeouts, a 1,000 ms fetch wait and credentials. ``embedded``
(:class:`EmbeddedProfile`) is Tansu, the development broker: short timeouts, short
fetch waits while tasks flow, a fetch again after a worker's own writes, the end-offset
remedy, and a restart when it goes away.
``YADTQ_BROKER_PROFILE`` chooses (``auto``: ``embedded`` when every bootstrap host is a
loopback address and no TLS/SASL is configured). Why each choice: ``docs/brokers.md``,
"Broker profiles".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from ..errors import ConfigurationError
from .fetch_wait import FAUST_FETCH_MAX_WAIT_MS, KAFKA_BUSY_FETCH_MAX_WAIT_MS, KAFKA_FETCH_MAX_WAIT_MS
from .transport import Transport

if TYPE_CHECKING:  # pragma: no cover
    from ..settings import Settings

__all__ = ["BrokerProfile", "EmbeddedProfile", "EmbeddedTransport", "profile_for", "FAUST_REQUEST_TIMEOUT",
           "FAUST_REBALANCE_TIMEOUT", "KAFKA_SESSION_TIMEOUT", "KAFKA_HEARTBEAT_INTERVAL"]

#: Faust's defaults for ``broker_request_timeout`` and ``broker_rebalance_timeout`` (s).
FAUST_REQUEST_TIMEOUT = 90.0
FAUST_REBALANCE_TIMEOUT = 60.0
#: The Apache Kafka consumer's defaults since 3.0 (KIP-735): session.timeout.ms and
#: heartbeat.interval.ms, in seconds.
KAFKA_SESSION_TIMEOUT = 45.0
KAFKA_HEARTBEAT_INTERVAL = 3.0


class BrokerProfile:
    """Apache Kafka: Faust options and transport for a production cluster."""

    name = "kafka"
    session_timeout = KAFKA_SESSION_TIMEOUT
    heartbeat_interval = KAFKA_HEARTBEAT_INTERVAL
    rebalance_timeout = FAUST_REBALANCE_TIMEOUT
    fetch_max_wait_ms: Optional[int] = KAFKA_FETCH_MAX_WAIT_MS
    #: The fetch wait while work flows; ``None``: the same as when idle.
    busy_fetch_max_wait_ms: Optional[int] = KAFKA_BUSY_FETCH_MAX_WAIT_MS
    #: Whether the broker's end offsets (ListOffsets) are its high watermarks: catch-ups
    #: ask them (``yadtq_app.catch_up``) instead of waiting for fetch answers.
    exact_end_offsets = True
    #: A broker that loses every topic when it stops: a worker restarts as soon as
    #: the broker closes its connections (no ``YADTQ_BROKER_LOST_AFTER`` grace).
    memory_only = False
    #: Whether a fetch held at the broker is answered as soon as one of its partitions
    #: gets a record (``Transport.fetch_woken_by_writes``).
    fetch_woken_by_writes = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def timeouts(self) -> tuple[float, float]:
        """``(session, heartbeat)`` in seconds: the settings' if set, else this profile's.

        Raises :class:`ConfigurationError` if the heartbeat is not positive and shorter
        than the session, or the session is longer than Faust's request timeout.
        """
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
        """Whether end offsets are re-read from fetches (:func:`~yadtq_app.kafka.end_offsets.true_end_offsets`):
        ``YADTQ_FIX_END_OFFSETS`` if set, else this profile's choice (off on Kafka)."""
        return bool(self.settings.fix_end_offsets)

    def transport_class(self) -> type[Transport]:
        """The Faust transport to use: :class:`Transport` with this profile's remedies."""
        idle, busy = self.fetch_waits()
        return Transport.configured(fetch_max_wait_ms=idle, busy_fetch_max_wait_ms=busy,
                                    fix_end_offsets=self.fixes_end_offsets(),
                                    fetch_woken_by_writes=self.fetch_woken_by_writes)


class EmbeddedProfile(BrokerProfile):
    """Tansu, the embedded development broker."""

    name = "embedded"
    session_timeout = 2.0
    heartbeat_interval = 0.5
    rebalance_timeout = 10.0
    fetch_max_wait_ms = 10
    busy_fetch_max_wait_ms = 3
    exact_end_offsets = False  # wrong for batched writes; fetch answers are right
    memory_only = True
    fetch_woken_by_writes = False  # a fetch waits out its wait though records arrive meanwhile

    def topic_config(self) -> dict[str, str]:
        return {}  # one node: nothing is replicated, so min.insync.replicas means nothing

    def fetch_waits(self) -> tuple[int, int]:
        """As :meth:`BrokerProfile.fetch_waits`; raises :class:`ConfigurationError` for
        a wait below 1 ms, with which the embedded broker answers every fetch empty."""
        idle, busy = super().fetch_waits()
        if busy < 1:
            raise ConfigurationError(
                f"a fetch wait of {busy} ms (YADTQ_FETCH_MAX_WAIT_MS / YADTQ_BUSY_FETCH_MAX_WAIT_MS) makes the "
                "embedded broker answer every fetch empty; use 1 ms or more")
        return idle, busy

    def fixes_end_offsets(self) -> bool:
        fix = self.settings.fix_end_offsets
        return fix if fix is not None else True


class EmbeddedTransport(Transport):
    """The embedded profile's transport with its default remedies (for a plain Faust app)."""

    fetch_max_wait_ms = 10
    busy_fetch_max_wait_ms = 3
    fix_end_offsets = True
    fetch_woken_by_writes = False


def profile_for(settings: Settings) -> BrokerProfile:
    """The profile in force for these settings."""
    if settings.resolved_profile == "embedded":
        return EmbeddedProfile(settings)
    return BrokerProfile(settings)
