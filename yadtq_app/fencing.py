"""Keep a worker that was frozen from acting on partitions it may have lost.

A worker paused longer than its session timeout (SIGSTOP, a VM stall, a debugger) is
evicted from the consumer group and its partitions move to another worker. When it
resumes it still holds messages it fetched before the pause and a local table it
thinks it owns; acting on them would run tasks a second time and write stale rows
into the changelog (a zombie). Kafka transactions would fence it, but the embedded
broker has none and yadtq must be correct without them.

:class:`FreezeGuard` notices the pause — the event loop saw no tick for longer than
``threshold`` — and closes the gate until the consumer group has assigned partitions
again (the normal outcome of an eviction) or ``hold`` seconds pass with no rebalance
(the pause was short enough that the group kept us). Pure logic with an injectable
clock; the agents tick it and ask it before acting.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

__all__ = ["FreezeGuard"]

logger = logging.getLogger(__name__)


class FreezeGuard:
    """Closed for a while after the process was frozen; see the module docs."""

    def __init__(self, *, threshold: float, hold: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.hold = hold
        self.clock = clock
        self.last_tick = clock()
        self.closed_until = 0.0
        self.freezes = 0

    def tick(self) -> None:
        """Call often (a timer does, and every agent before it acts)."""
        now = self.clock()
        gap = now - self.last_tick
        if gap > self.threshold:
            self.freezes += 1
            self.closed_until = now + self.hold
            logger.warning("the worker was frozen for %.1f s; not acting until the group reassigns partitions",
                           gap)
        self.last_tick = now

    def is_open(self) -> bool:
        self.tick()
        return self.clock() >= self.closed_until

    def on_assigned(self) -> None:
        """A rebalance finished: what we hold now is ours."""
        self.closed_until = 0.0
        self.last_tick = self.clock()
