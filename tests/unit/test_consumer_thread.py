"""ConsumerThread.on_thread_stop: Faust's stop with one step added, checked against Faust's."""

from __future__ import annotations

from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.threads import QueueServiceThread

from tests.support.source import method_statements
from yadtq_app.kafka.thread import ConsumerThread


def test_fausts_consumer_thread_stop_is_still_the_one_yadtq_copies() -> None:
    """``ConsumerThread.on_thread_stop`` repeats Faust's two steps (the method queue,
    then the consumer) around ``leave_now``; a Faust upgrade that changes them, or puts
    a stop of its own between Faust's class and mode's, must be read again."""
    assert method_statements(faust_aiokafka.AIOKafkaConsumerThread, "on_thread_stop") == (
        "await super().on_thread_stop()\n"
        "if self._consumer is not None:\n"
        "await self._consumer.stop()"
    ), "Faust's AIOKafkaConsumerThread.on_thread_stop changed: see yadtq_app/kafka/thread.py"
    stops = [klass for klass in ConsumerThread.__mro__ if "on_thread_stop" in vars(klass)]
    assert stops[:3] == [ConsumerThread, faust_aiokafka.AIOKafkaConsumerThread, QueueServiceThread], \
        "a class between Faust's consumer thread and mode's QueueServiceThread stops threads too"
