"""The topics yadtq uses, declared on the app.

* the **task topic** (``task_queue`` by default): raw bytes, the wire format of
  :mod:`yadtq_app.wire`, keyed by the task id as UTF-8 bytes, so any Kafka client
  can submit;
* the **events topic**: :class:`~yadtq_app.records.TaskEvent` records keyed exactly
  like the task topic (raw id bytes) and with the same partition count, so Faust
  co-partitions it with the task topic and the status table: the worker that runs a
  task also owns its status row;
* the **dead-letter topic**: one partition of
  :class:`~yadtq_app.records.DeadLetter` records, messages that will never run;
* the **heartbeat topic**: one partition, so one worker holds every heartbeat and
  can answer ``GET /workers`` for the whole cluster;
* the **sequencer topic**: :class:`~yadtq_app.ordering.SequencerMessage` records keyed
  by ordering key (raw bytes), for tasks submitted with an ``ordering_key``
  (see :mod:`yadtq_app.ordering`).
"""

from __future__ import annotations

from .application import app, settings
from .ordering import SequencerMessage
from .records import DeadLetter, Heartbeat, TaskEvent

__all__ = ["task_topic", "events_topic", "heartbeat_topic", "dead_letter_topic", "sequencer_topic"]

task_topic = app.topic(settings.task_topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw", partitions=settings.partitions)
events_topic = app.topic(settings.events_topic, key_type=bytes, value_type=TaskEvent, key_serializer="raw",
                         value_serializer="json", partitions=settings.partitions)
heartbeat_topic = app.topic(settings.heartbeat_topic, key_type=str, value_type=Heartbeat, key_serializer="json",
                            value_serializer="json", partitions=1)
dead_letter_topic = app.topic(settings.dead_letter_topic, key_type=str, value_type=DeadLetter,
                              key_serializer="json", value_serializer="json", partitions=1)
sequencer_topic = app.topic(settings.sequencer_topic, key_type=bytes, value_type=SequencerMessage,
                            key_serializer="raw", value_serializer="json", partitions=settings.partitions)
