"""A batch read names each id's partition itself (:func:`yadtq_app.routing.key_partition`):
it must be the partition aiokafka's producer sends the key to, or a read would ask the
wrong worker."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.partitioner import DefaultPartitioner

from yadtq_app.routing import key_partition


@pytest.mark.parametrize("count", [1, 3, 8, 12, 50])
def test_the_partition_is_aiokafka_s(count: int) -> None:
    partitions = list(range(count))
    keys = [uuid.uuid4().hex.encode() for _ in range(500)] + [b"", b"a", "é-ü".encode(), b"x" * 300]
    for key in keys:
        assert key_partition(key, partitions) == DefaultPartitioner()(key, partitions, partitions)
