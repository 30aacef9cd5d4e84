"""yadtq names a key's partition itself (:func:`yadtq_app.encoding.murmur2`,
:func:`yadtq_app.routing.key_partition`): it must be the partition aiokafka's producer
sends the key to, or a read would ask the wrong worker."""

from __future__ import annotations

import random
import uuid

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from yadtq_app.encoding import murmur2
from yadtq_app.routing import key_partition


@pytest.mark.parametrize("count", [1, 3, 8, 12, 50])
def test_the_partition_is_aiokafka_s(count: int) -> None:
    partitions = list(range(count))
    keys = [uuid.uuid4().hex.encode() for _ in range(500)] + [b"", b"a", "é-ü".encode(), b"x" * 300]
    for key in keys:
        assert key_partition(key, partitions) == DefaultPartitioner()(key, partitions, partitions)


def test_murmur2_is_aiokafka_s() -> None:
    rng = random.Random(18)
    keys = [bytes(rng.randrange(256) for _ in range(n)) for n in range(70) for _ in range(20)]
    keys += [uuid.uuid4().hex.encode() for _ in range(200)] + [b"\xff" * 33, "é-ü".encode()]
    for key in keys:
        assert murmur2(key) == aiokafka_murmur2(key), key
