"""Celery 5 with the same no-op ``add`` as yadtq's: Redis as result backend, and as broker
unless ``BENCH_CELERY_BROKER`` names another (Apache Kafka through kombu's
``confluentkafka`` transport: ``confluentkafka://HOST:PORT``).

Worker (started by bench/compare.py)::

    celery -A bench.peers.celery_app worker --pool prefork --concurrency 2

Celery's defaults stay (prefetch multiplier 4, early acks, visibility timeout); only
the serializer is pinned to JSON, as yadtq's wire format is JSON too.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from bench.peers import redis_url

__all__ = ["app", "add", "build"]


def build(broker: str) -> tuple[Celery, Any]:
    """A Celery app on ``broker`` with Redis's database 1 for results, and its ``add``."""
    celery = Celery("bench", broker=broker, backend=redis_url(1))
    celery.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    if broker.startswith("confluentkafka://"):  # librdkafka logs each closed connection otherwise
        celery.conf.broker_transport_options = {"kafka_common_config": {"log_level": 3}}
    return celery, celery.task(name="add")(_add)


def _add(a: float, b: float) -> float:
    """a + b"""
    return a + b


app, add = build(os.environ.get("BENCH_CELERY_BROKER") or redis_url(0))
