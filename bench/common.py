"""Pieces every measured system shares: samples, bounded concurrency, a reaper.

``Reaper`` bounds processes the comparison does not start itself (the embedded broker
and yadtq workers come from ``yadtq_app.broker`` and ``tests/support/cluster.py``,
reused as they are): a ``timeout``-bounded watcher that SIGTERMs them by PID if the
benchmark dies without stopping them, and is itself removed before they are stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from dataclasses import dataclass, field
from typing import Awaitable, Iterable, Optional, TypeVar

__all__ = ["ThroughputSample", "bounded_gather", "Reaper", "CONCURRENCY"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Requests an asyncio client keeps in flight (yadtq over HTTP, taskiq): submissions and result checks.
CONCURRENCY = 64


@dataclass
class ThroughputSample:
    """One throughput run: ``n`` tasks submitted, then every result confirmed."""

    n: int
    submit_s: float   # first submission → last submission acknowledged
    total_s: float    # first submission → last result confirmed
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def tasks_per_s(self) -> float:
        return self.n / self.total_s


async def bounded_gather(aws: Iterable[Awaitable[T]], limit: int = CONCURRENCY) -> list[T]:
    """``asyncio.gather`` with at most ``limit`` awaitables running; results in order.

    The first failure cancels the rest and is raised.
    """
    sem = asyncio.Semaphore(limit)

    async def one(aw: Awaitable[T]) -> T:
        async with sem:
            return await aw

    tasks = [asyncio.ensure_future(one(aw)) for aw in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class Reaper:
    """SIGTERM ``pids`` when this benchmark process exits or ``lifetime`` runs out.

    ``stop()`` removes the watcher first (by its PID), so it never signals a PID
    that was reused after the processes were stopped normally.
    """

    def __init__(self, name: str, pids: list[int], lifetime: float) -> None:
        self.name = name
        self.pids = pids
        self.lifetime = max(1, int(lifetime))
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> "Reaper":
        targets = " ".join(str(p) for p in self.pids)
        # --foreground keeps timeout in the watcher's process group, so stop() removes all of it.
        script = (f"timeout --foreground {self.lifetime} tail --pid={os.getpid()} -f /dev/null; "
                  f"kill -TERM {targets} 2>/dev/null")
        self.proc = subprocess.Popen(["sh", "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        logger.debug("reaper for %s (pids %s) is pid %s", self.name, targets, self.proc.pid)
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the watcher and its tail: its own group
        proc.wait(10)
