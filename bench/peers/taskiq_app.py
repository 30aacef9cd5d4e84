"""taskiq with taskiq-redis: a Redis broker and result backend, and the same no-op ``add``.

Worker (started by bench/compare.py)::

    taskiq worker bench.peers.taskiq_app:broker --workers 2

The broker is ``RedisStreamBroker`` (acknowledged, the one taskiq-redis recommends);
``BENCH_TASKIQ_BROKER=list`` switches to ``ListQueueBroker`` (LPUSH/BRPOP, no acks).
``add`` is a sync function like yadtq's and Celery's, so taskiq runs it in its thread pool.
"""

from __future__ import annotations

import os

from taskiq import AsyncBroker
from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend, RedisStreamBroker

from bench.peers import redis_url

__all__ = ["broker", "add", "QUEUE"]

QUEUE = "bench-taskiq"

_results: RedisAsyncResultBackend[float] = RedisAsyncResultBackend(redis_url(2))
broker: AsyncBroker
if os.environ.get("BENCH_TASKIQ_BROKER", "stream") == "list":
    broker = ListQueueBroker(redis_url(2), queue_name=QUEUE).with_result_backend(_results)
else:
    broker = RedisStreamBroker(redis_url(2), queue_name=QUEUE).with_result_backend(_results)


@broker.task(task_name="add")
def add(a: float, b: float) -> float:
    """a + b"""
    return a + b
