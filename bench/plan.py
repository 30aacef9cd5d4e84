"""The order of one comparison run's clusters: yadtq and the Faust floor, interleaved.

For each worker count, each broker's yadtq clusters (one per fetch wait on Apache Kafka)
and then its floor; every other run the whole order is reversed, so no system or broker
always goes first, or always runs right after a peer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

__all__ = ["Step", "cluster_steps"]


@dataclass(frozen=True)
class Step:
    """One fresh cluster to measure: ``system`` is "yadtq" or "floor"."""

    system: str
    workers: int
    broker: str
    #: On Apache Kafka, ``YADTQ_FETCH_MAX_WAIT_MS`` instead of the profile's (yadtq only).
    fetch_wait: Optional[int] = None

    def describe(self, run: int) -> str:
        what = "Faust floor" if self.system == "floor" else "yadtq"
        wait = "" if self.fetch_wait is None else f" (fetch {self.fetch_wait} ms)"
        return f"{what} {self.workers}w on {self.broker}{wait} run {run + 1}"


def cluster_steps(run: int, *, systems: Sequence[str], workers: Sequence[int], brokers: Sequence[str],
                  kafka_fetch_waits: Sequence[Optional[int]]) -> list[Step]:
    """The clusters of run ``run`` (0-based) in the order they run."""
    steps: list[Step] = []
    for n in workers:
        for broker in brokers:
            if "yadtq" in systems:
                waits = kafka_fetch_waits if broker == "kafka" else [None]
                steps.extend(Step("yadtq", n, broker, w) for w in waits)
            if "floor" in systems:
                steps.append(Step("floor", n, broker))
    return steps if run % 2 == 0 else steps[::-1]
