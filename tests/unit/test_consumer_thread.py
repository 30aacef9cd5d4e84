"""ConsumerThread.on_thread_stop: Faust's stop with one step added, checked against Faust's."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.threads import QueueServiceThread

from yadtq_app.kafka.thread import ConsumerThread


def _method_body(klass: type, name: str) -> str:
    """The statements of ``klass.name`` as text, without its docstring and comments.

    Read as text, as ``test_private_names`` reads class bodies."""
    source = Path(inspect.getfile(klass)).read_text()
    start = source.index(f"\nclass {klass.__name__}(")
    start = source.index(f"    async def {name}(", start)
    end = source.find("\n    def ", start + 1)
    end_async = source.find("\n    async def ", start + 1)
    end = min(e for e in (end, end_async, len(source)) if e >= 0)
    body = re.sub(r'"""(.|\n)*?"""', "", source[start:end])
    lines = [line.split("#", 1)[0].strip() for line in body.splitlines()[1:]]
    return "\n".join(line for line in lines if line)


def test_fausts_consumer_thread_stop_is_still_the_one_yadtq_copies() -> None:
    """``ConsumerThread.on_thread_stop`` repeats Faust's two steps (the method queue,
    then the consumer) around ``leave_now``; a Faust upgrade that changes them, or puts
    a stop of its own between Faust's class and mode's, must be read again."""
    assert _method_body(faust_aiokafka.AIOKafkaConsumerThread, "on_thread_stop") == (
        "await super().on_thread_stop()\n"
        "if self._consumer is not None:\n"
        "await self._consumer.stop()"
    ), "Faust's AIOKafkaConsumerThread.on_thread_stop changed: see yadtq_app/kafka/thread.py"
    stops = [klass for klass in ConsumerThread.__mro__ if "on_thread_stop" in vars(klass)]
    assert stops[:3] == [ConsumerThread, faust_aiokafka.AIOKafkaConsumerThread, QueueServiceThread], \
        "a class between Faust's consumer thread and mode's QueueServiceThread stops threads too"
