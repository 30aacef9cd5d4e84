"""The peers yadtq is measured against, each a one-task app on Redis (``BENCH_REDIS_URL``;
Celery's broker may be Apache Kafka instead: ``BENCH_CELERY_BROKER``).

Imported by the benchmark's client and, by module path, by the peers' own worker
processes, which the benchmark starts with the same environment.
"""

from __future__ import annotations

import os

__all__ = ["redis_url"]


def redis_url(db: int) -> str:
    """``BENCH_REDIS_URL`` (``redis://127.0.0.1:PORT``) with database ``db``."""
    base = os.environ.get("BENCH_REDIS_URL")
    if not base:
        raise RuntimeError("BENCH_REDIS_URL is not set: the benchmark sets it for its peers")
    return f"{base.rstrip('/')}/{db}"
