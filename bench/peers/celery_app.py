"""Celery 5 with Redis as broker and result backend, and the same no-op ``add`` as yadtq's.

Worker (started by bench/compare.py)::

    celery -A bench.peers.celery_app worker --pool prefork --concurrency 2

Celery's defaults stay (prefetch multiplier 4, early acks, visibility timeout); only
the serializer is pinned to JSON, as yadtq's wire format is JSON too.
"""

from __future__ import annotations

from celery import Celery

from bench.peers import redis_url

__all__ = ["app", "add"]

app = Celery("bench", broker=redis_url(0), backend=redis_url(1))
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="add")  # type: ignore[untyped-decorator]  # celery ships no types
def add(a: float, b: float) -> float:
    """a + b"""
    return a + b
