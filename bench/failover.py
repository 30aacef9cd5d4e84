"""Failover time on the embedded broker: kill -9 a worker mid-task, N times.

Each round starts a fresh 3-worker cluster (real ``yadtq worker`` processes), submits
30 two-second ledgered tasks, kills a worker that has tasks in flight, and measures
the time from the kill to the first re-run of one of its tasks on a survivor, plus
whether every task succeeded with no unexpected re-run. Prints the distribution.

    .venv/bin/python bench/failover.py --rounds 5
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.test_core import wait_all_finished  # noqa: E402
from tests.support.cluster import Cluster, free_port  # noqa: E402
from tests.support.ledger import Ledger, check, fault_mid_task  # noqa: E402
from yadtq_app.broker import EmbeddedBroker  # noqa: E402


def one_round(broker_url: str, workdir: Path, extra_env: dict[str, str]) -> dict[str, object]:
    ledger_path = workdir / "ledger.jsonl"
    cluster = Cluster(broker_url, workdir, extra_env={"YADTQ_TEST_LEDGER": str(ledger_path), **extra_env})
    cluster.start(3)
    try:
        ledger = Ledger(ledger_path)
        victim, ids, killed_at = fault_mid_task(cluster, ledger, signal.SIGKILL, n_tasks=30)
        victim.proc.wait(10)
        done = wait_all_finished(cluster, ids, timeout=120)
        figures = check(ledger.read(), done, faulty=victim.worker_id, fault_at=killed_at)
        return {"ok": True, **figures}
    except AssertionError as exc:
        return {"ok": False, "error": str(exc)[:300]}
    finally:
        cluster.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--session-timeout", type=float, default=None, help="YADTQ_SESSION_TIMEOUT for the workers")
    args = ap.parse_args()
    env = {}
    if args.session_timeout is not None:
        env["YADTQ_SESSION_TIMEOUT"] = str(args.session_timeout)
    broker = EmbeddedBroker("127.0.0.1", free_port()).start()
    results = []
    try:
        for i in range(args.rounds):
            with tempfile.TemporaryDirectory() as d:
                r = one_round(broker.url, Path(d), env)
            results.append(r)
            print(json.dumps({"round": i + 1, **r}), flush=True)
    finally:
        broker.stop()
    times = [r["failover_s"] for r in results if r.get("ok") and r.get("failover_s") is not None]
    ok = sum(1 for r in results if r.get("ok"))
    print(f"\nmachine: {platform.node()} {platform.machine()} {platform.python_version()}, "
          f"date {time.strftime('%Y-%m-%d')}")
    print(f"rounds {len(results)}, correct (lost 0, stuck 0, no unexpected re-run) {ok}")
    if times:
        q = sorted(times)
        print(f"kill -> first re-run start (s): min {q[0]:.2f}  median {statistics.median(q):.2f}  "
              f"max {q[-1]:.2f}  all {[round(t, 2) for t in q]}")
    return 0 if ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
