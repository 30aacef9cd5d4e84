"""``dead-letters``: task messages that will never run, keyed by dead-letter id.

One partition (like ``workers``) so one worker can list them all for
``GET /dead-letters``. Written only by :func:`agents.dead_letters.record_dead_letters`.
"""

from __future__ import annotations

from yadtq_app.application import app
from yadtq_app.records import DeadLetter

__all__ = ["dead_letters", "list_dead_letters"]

dead_letters = app.Table(
    "dead-letters",
    key_type=str,
    value_type=DeadLetter,
    partitions=1,
    help="Task messages that will never run, with the reason.",
)


def list_dead_letters(limit: int = 1000) -> list[DeadLetter]:
    """The newest ``limit`` dead letters, oldest first."""
    items = sorted((v for v in dead_letters.values() if isinstance(v, DeadLetter)), key=lambda d: d.at)
    return items[-limit:]
