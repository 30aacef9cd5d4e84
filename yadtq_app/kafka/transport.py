"""The Faust transport yadtq's workers use: Faust's aiokafka transport with
:class:`~yadtq_app.kafka.consumer.Consumer` and :class:`~yadtq_app.kafka.linger.Producer`.

Its remedies are class attributes, read by the consumer and its thread; a broker
profile picks them with :meth:`Transport.configured`
(:meth:`yadtq_app.kafka.profiles.BrokerProfile.transport_class`).
"""

from __future__ import annotations

from typing import ClassVar

from faust.transport.drivers import aiokafka as faust_aiokafka

from .commits import ack_through_consumer
from .consumer import Consumer
from .fetch_wait import KAFKA_BUSY_FETCH_MAX_WAIT_MS, KAFKA_FETCH_MAX_WAIT_MS
from .linger import Producer

__all__ = ["Transport"]

# Stream acks must reach Consumer.ack (see commits.ack_through_consumer); done on import,
# as before the split, so it holds from the moment the app module is loaded.
ack_through_consumer()


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with yadtq's consumer (Kafka's defaults below)."""

    Consumer: ClassVar[type[faust_aiokafka.Consumer]] = Consumer
    Producer: ClassVar[type[faust_aiokafka.Producer]] = Producer
    #: The fetch wait while idle (ms), and while tasks flow.
    fetch_max_wait_ms: ClassVar[int] = KAFKA_FETCH_MAX_WAIT_MS
    busy_fetch_max_wait_ms: ClassVar[int] = KAFKA_BUSY_FETCH_MAX_WAIT_MS
    #: Whether end offsets are re-read from fetch answers (:func:`~yadtq_app.kafka.end_offsets.true_end_offsets`).
    fix_end_offsets: ClassVar[bool] = False
    #: Whether the broker answers a held fetch as soon as one of its partitions gets a
    #: record; if not, the consumer fetches again when told of a write
    #: (:meth:`~yadtq_app.kafka.consumer.Consumer.fetch_written`).
    fetch_woken_by_writes: ClassVar[bool] = True

    @classmethod
    def configured(cls, *, fetch_max_wait_ms: int, busy_fetch_max_wait_ms: int,
                   fix_end_offsets: bool, fetch_woken_by_writes: bool = True) -> type[Transport]:
        """A subclass of this transport with these remedies."""
        ack_through_consumer()
        attrs = {"fetch_max_wait_ms": fetch_max_wait_ms, "busy_fetch_max_wait_ms": busy_fetch_max_wait_ms,
                 "fix_end_offsets": fix_end_offsets, "fetch_woken_by_writes": fetch_woken_by_writes,
                 "__module__": cls.__module__}
        return type(cls.__name__, (cls,), attrs)
