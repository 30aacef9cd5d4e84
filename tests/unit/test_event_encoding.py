"""A submission's ``queued`` events, written to Kafka without Faust's ``Topic.send``
(:func:`yadtq_app.web_submit.encode_event`), decode as the status agent reads them."""

from __future__ import annotations

from yadtq_app.records import BATCH, TaskEvent, TaskRequest
from yadtq_app.web_submit import encode_event


def test_a_queued_event_and_a_batch_decode_to_themselves() -> None:
    requests = [TaskRequest(id=f"t{i}", task="add", task_args=[i, i], submitted_at=1.0, timeout=2.0)
                for i in range(3)]
    one = TaskEvent.queued(requests[0], 5.0)
    batch = TaskEvent.batch([TaskEvent.queued_fields(r, 5.0) for r in requests])
    for event in (one, batch):
        wire = encode_event(event)
        assert isinstance(wire, bytes)
        assert TaskEvent.loads(wire, serializer="json") == event
    back = TaskEvent.loads(encode_event(batch), serializer="json")
    assert back.kind == BATCH and back.unpacked() == [TaskEvent.queued(r, 5.0) for r in requests]
