"""``sequence_ordered``: release tasks that share an ordering key one at a time.

See :mod:`yadtq_app.ordering` for the design; this is the agent that stores each
key's :class:`~yadtq_app.ordering.KeyQueue` and sends the released task, and
:func:`send_done`, which the task agent calls when an ordered task is final.
"""

from __future__ import annotations

import logging

from faust.types import StreamT

from yadtq_app.application import app
from yadtq_app.encoding import compact_json
from yadtq_app.ordering import DONE, ENQUEUE, SequencerMessage, sequence
from yadtq_app.records import TaskRequest
from yadtq_app.tables.key_queues import key_queues
from yadtq_app.topics import sequencer_topic, task_topic

logger = logging.getLogger(__name__)


@app.agent(sequencer_topic, name="yadtq.sequence_ordered")
async def sequence_ordered(stream: StreamT[SequencerMessage]) -> None:
    """Keep each key's queue; send the task whose turn it is. Never raises."""
    async for event in stream.events():
        msg = event.message
        if not await app.may_act_on(msg.topic, msg.partition):
            continue
        value = event.value
        try:
            key = value.key.encode()
            row, to_send = sequence(key_queues.get(key), value)
            if row is None:
                key_queues.pop(key, None)
            else:
                key_queues[key] = row
            if to_send is not None:
                wire = {**to_send, "sequenced": True}
                await (await task_topic.send(key=wire["task-id"].encode(),
                                             value=compact_json(wire)))
        except Exception:  # one bad message must not stop the partition
            logger.exception("sequencer: could not apply %s for key %r task %r", getattr(value, "kind", "?"),
                             getattr(value, "key", "?"), getattr(value, "task_id", "?"))


async def enqueue(request: TaskRequest) -> None:
    """Hand an ordered task to the sequencer (until the broker has it)."""
    assert request.ordering_key is not None
    wire = request.to_wire()
    wire.pop("sequenced", None)
    message = SequencerMessage(kind=ENQUEUE, key=request.ordering_key, task_id=request.id, wire=wire)
    await (await sequencer_topic.send(key=request.ordering_key.encode(), value=message))


async def send_done(request: TaskRequest) -> None:
    """Tell the sequencer an ordered task is final, so the next of its key may run."""
    if request.ordering_key is None:
        return
    message = SequencerMessage(kind=DONE, key=request.ordering_key, task_id=request.id)
    await (await sequencer_topic.send(key=request.ordering_key.encode(), value=message))
