"""Which worker of a cluster owns a task id (to send requests through the owner or not)."""

from __future__ import annotations

from typing import Any

import httpx
from kafka.partitioner.default import murmur2


def partition_of(task_id: str, partitions: int) -> int:
    """The partition of ``task_id``'s key, as the workers' producers pick it."""
    return (murmur2(task_id.encode()) & 0x7FFFFFFF) % partitions


def holders(cluster: Any) -> dict[int, Any]:
    """Partition → the worker holding it, in a settled cluster."""
    out = {}
    for w in cluster.running():
        for p in httpx.get(w.url + "/health", timeout=5).json()["partitions"]:
            out[p] = w
    assert sorted(out) == list(range(cluster.partitions)), out
    return out


def owner_and_other(cluster: Any, task_id: str) -> tuple[Any, Any]:
    """(the worker holding ``task_id``'s partition, another worker) of a settled cluster."""
    partition = partition_of(task_id, cluster.partitions)
    owner = other = None
    for w in cluster.running():
        held = httpx.get(w.url + "/health", timeout=5).json()["partitions"]
        if partition in held:
            owner = w
        else:
            other = w
    assert owner is not None and other is not None, (task_id, partition)
    return owner, other
