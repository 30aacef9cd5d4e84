"""The execution ledger written by ``tests.ledgered`` tasks, and what it tells."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Execution:
    id: str
    attempt: int
    worker: str
    start: float
    end: float | None = None
    stopped: float | None = None  # cancelled while running


@dataclass
class Ledger:
    path: Path
    executions: list[Execution] = field(default_factory=list)

    def read(self) -> "Ledger":
        self.executions = []
        open_: dict[tuple[str, int, str], Execution] = {}
        if not self.path.exists():
            return self
        for line in self.path.read_text().splitlines():
            rec: dict[str, Any] = json.loads(line)
            key = (rec["id"], rec["attempt"], rec["worker"])
            if rec["event"] == "start":
                ex = Execution(rec["id"], rec["attempt"], rec["worker"], rec["t"])
                open_[key] = ex
                self.executions.append(ex)
            elif key in open_ and rec["event"] == "cancelled":
                open_[key].stopped = rec["t"]
            elif key in open_:
                open_[key].end = rec["t"]
        return self

    def by_id(self) -> dict[str, list[Execution]]:
        out: dict[str, list[Execution]] = defaultdict(list)
        for ex in self.executions:
            out[ex.id].append(ex)
        return out

    def in_flight(self, worker: str, at: float) -> set[str]:
        """Ids that ``worker`` had started and not finished at time ``at``."""
        return {ex.id for ex in self.executions
                if ex.worker == worker and ex.start <= at and (ex.end is None or ex.end > at)}

    def running_executions(self, worker: str) -> list[Execution]:
        """The executions ``worker`` has started and neither finished nor had cancelled."""
        return [ex for ex in self.executions if ex.worker == worker and ex.end is None and ex.stopped is None]

    def running(self, worker: str) -> set[str]:
        return {ex.id for ex in self.running_executions(worker)}


def check(ledger: Ledger, statuses: dict[str, dict[str, Any]], *, faulty: str, fault_at: float,
          allow_stale_finish: bool = False) -> dict[str, Any]:
    """Assert the failover invariants; return figures about the re-runs.

    - lost 0: every task ended ``success``;
    - stuck 0: none is left ``processing``/``queued``;
    - double completion 0: each task completed (an ``end`` in the ledger) once, except,
      with ``allow_stale_finish``, a paused worker finishing what it had in flight;
    - re-executions only for tasks in flight on the faulty worker at the fault.
    """
    lost = [t for t, s in statuses.items() if s["status"] != "success"]
    assert not lost, f"lost/stuck tasks: {[(t, statuses[t]['status']) for t in lost][:10]}"
    in_flight = ledger.in_flight(faulty, fault_at)
    runs = ledger.by_id()
    missing = [t for t in statuses if t not in runs]
    assert not missing, f"never executed: {missing[:10]}"
    rerun = {t for t, exs in runs.items() if len(exs) > 1}
    unexpected = rerun - in_flight
    assert not unexpected, ("re-executed although not in flight at the fault: "
                            + "; ".join(f"{t}: {runs[t]}" for t in sorted(unexpected)[:10]))
    for t, exs in runs.items():
        ends = [e for e in exs if e.end is not None]
        if allow_stale_finish and t in in_flight:
            assert len(ends) <= 2, (t, exs)
        else:
            assert len(ends) == 1, f"task {t} completed {len(ends)} times: {exs}"
    restarts = [min(e.start for e in runs[t] if e.worker != faulty and e.start > fault_at)
                for t in in_flight if any(e.worker != faulty and e.start > fault_at for e in runs[t])]
    return {"in_flight": len(in_flight), "rerun": len(rerun), "unexpected_reruns": len(unexpected),
            "failover_s": (min(restarts) - fault_at) if restarts else None}


TASK_SECONDS = 2.0


def submit_ledgered(cluster: Any, n: int, seconds: float = TASK_SECONDS) -> list[str]:
    """Submit n ``tests.ledgered`` tasks round-robin over the running workers; their ids."""
    from yadtq_app import Client

    clients = [Client(w.url) for w in cluster.running()]
    return [clients[i % len(clients)].submit("tests.ledgered", seconds, value=i).id for i in range(n)]


def fault_mid_task(cluster: Any, ledger: Ledger, sig: int, *, n_tasks: int) -> tuple[Any, list[str], float]:
    """Submit ledgered tasks, wait until a worker other than the first runs ≥ 2 of them,
    send it ``sig``; (that worker, the task ids, when the signal was sent)."""
    import time

    from .wait import wait_for

    ids = submit_ledgered(cluster, n_tasks)

    def busy() -> Any:
        ledger.read()
        return next((w for w in cluster.workers[1:] if len(ledger.running(w.worker_id)) >= 2), None)

    victim = wait_for(busy, timeout=30, interval=0.05, message="a worker with tasks in flight")
    victim.signal(sig)
    return victim, ids, time.time()
