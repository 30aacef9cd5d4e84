"""``workers``: the latest heartbeat of every worker, in tumbling windows.

One partition, so the worker that owns it sees every worker; windows expire, so the
table does not grow without bound, while a dead worker stays listed (with its last
heartbeat) until its last window expires. Written only by
:func:`agents.heartbeats.record_heartbeats`.
"""

from __future__ import annotations

from typing import Any

from yadtq_app.application import app
from yadtq_app.records import Heartbeat

__all__ = ["workers", "WINDOW_SECONDS", "HISTORY_SECONDS", "latest_heartbeats"]

WINDOW_SECONDS = 60.0
#: How long a silent worker stays listed.
HISTORY_SECONDS = 3600.0

workers = app.Table(
    "workers",
    key_type=str,
    value_type=Heartbeat,
    partitions=1,
    help="Latest heartbeat per worker id, per window.",
).tumbling(WINDOW_SECONDS, expires=HISTORY_SECONDS)


def latest_heartbeats() -> list[Heartbeat]:
    """The newest heartbeat of each worker across all windows still kept."""
    latest: dict[str, Heartbeat] = {}
    for key, value in workers.table.data.items():
        worker_id = _worker_of(key)
        if not isinstance(value, Heartbeat) or worker_id is None:
            continue
        seen = latest.get(worker_id)
        if seen is None or value.at > seen.at:
            latest[worker_id] = value
    return sorted(latest.values(), key=lambda hb: hb.worker)


def _worker_of(key: Any) -> Any:
    # Windowed keys are (key, (window_start, window_end)).
    if isinstance(key, (list, tuple)) and len(key) == 2:
        return key[0]
    return None
