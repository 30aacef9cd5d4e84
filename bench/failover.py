"""Failover time: kill -9 a worker mid-task, N times, on the embedded broker or Apache Kafka.

Each round starts a fresh 3-worker cluster (real ``yadtq worker`` processes), submits
30 two-second ledgered tasks, kills a worker that has tasks in flight, and measures
the time from the kill to the first re-run of one of its tasks on a survivor, plus
whether every task succeeded with no unexpected re-run. Prints the distribution and
the consumer-group session timeout the workers ran with (what bounds the figure).

``--broker kafka`` runs the rounds on one fresh Apache Kafka (``LocalKafka``, from
``make kafka-jars``; ``--nodes 3`` for three KRaft nodes, yadtq's topics then with three
replicas and ``min.insync.replicas`` 2, as in the tests), with the bench's broker
settings (``bench/apache_kafka.py``); its workers run the ``kafka`` profile with the
tests' 2 s session and 0.5 s heartbeat (``tests.support.brokers.KAFKA_WORKER_ENV``;
the profile's own session is 45 s), unless ``--session-timeout`` says otherwise.

    .venv/bin/python bench/failover.py --rounds 5
    .venv/bin/python bench/failover.py --broker kafka --nodes 3 --rounds 3
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

from bench.apache_kafka import REPLICATED_ENV, kafka_problem, start_kafka  # noqa: E402
from bench.common import Reaper  # noqa: E402
from tests.integration.test_core import wait_all_finished  # noqa: E402
from tests.support.brokers import KAFKA_WORKER_ENV  # noqa: E402
from tests.support.cluster import Cluster, free_port  # noqa: E402
from tests.support.ledger import Ledger, check, fault_mid_task  # noqa: E402
from yadtq_app.broker import EmbeddedBroker  # noqa: E402
from yadtq_app.kafka.profiles import KAFKA_SESSION_TIMEOUT, EmbeddedProfile  # noqa: E402
from yadtq_app.kafka_local import LocalKafka  # noqa: E402

#: The longest a round's workers may live (s).
ROUND_LIFETIME = 600.0


def one_round(broker_url: str, workdir: Path, extra_env: dict[str, str]) -> dict[str, object]:
    ledger_path = workdir / "ledger.jsonl"
    cluster = Cluster(broker_url, workdir, extra_env={"YADTQ_TEST_LEDGER": str(ledger_path), **extra_env})
    cluster.start(3)
    # A round takes well under a minute: its workers are stopped after 10 at the latest,
    # or as soon as this process exits.
    reaper = Reaper("failover workers", [w.pid for w in cluster.workers], ROUND_LIFETIME).start()
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
        reaper.stop()
        cluster.stop()


def worker_env(broker: str, nodes: int, session_timeout: float | None) -> tuple[dict[str, str], str]:
    """The workers' environment on ``broker`` and a description of the session timeout it gives."""
    env: dict[str, str] = {}
    if broker == "kafka":
        env.update(KAFKA_WORKER_ENV)
        if nodes >= 3:
            env.update(REPLICATED_ENV)
    if session_timeout is not None:
        env["YADTQ_SESSION_TIMEOUT"] = f"{session_timeout:g}"
    if "YADTQ_SESSION_TIMEOUT" not in env:
        return env, f"{EmbeddedProfile.session_timeout:g} s (the embedded profile's)"
    origin = ("--session-timeout" if session_timeout is not None
              else f"the tests' KAFKA_WORKER_ENV; the kafka profile's own is {KAFKA_SESSION_TIMEOUT:g} s")
    heartbeat = f", heartbeat {env['YADTQ_CONSUMER_HEARTBEAT']} s" if "YADTQ_CONSUMER_HEARTBEAT" in env else ""
    return env, f"{env['YADTQ_SESSION_TIMEOUT']} s{heartbeat} ({origin})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--broker", choices=["embedded", "kafka"], default="embedded",
                    help="the embedded broker (default) or Apache Kafka (LocalKafka, `make kafka-jars`)")
    ap.add_argument("--nodes", type=int, choices=[1, 3], default=1, help="Apache Kafka's KRaft nodes (default 1)")
    ap.add_argument("--session-timeout", type=float, default=None, help="YADTQ_SESSION_TIMEOUT for the workers")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="keep each round's worker logs in DIR/round-N")
    ap.add_argument("--time-limit", type=float, default=None,
                    help="lifetime of the Kafka JVMs (s; default 300 + 240 per round)")
    args = ap.parse_args()
    if args.broker != "kafka" and args.nodes != 1:
        ap.error("--nodes is for --broker kafka")
    env, session = worker_env(args.broker, args.nodes, args.session_timeout)
    where = "embedded broker" if args.broker == "embedded" else f"Apache Kafka, {args.nodes} node(s)"
    print(f"kill -9 failover on the {where}; worker session timeout {session}", flush=True)
    server: EmbeddedBroker | LocalKafka
    if args.broker == "kafka":
        problem = kafka_problem()
        if problem:
            print(f"cannot run Apache Kafka: {problem}", file=sys.stderr)
            return 2
        kafka_dir = tempfile.TemporaryDirectory(prefix="yadtq-failover-kafka-")
        lifetime = args.time_limit or 300 + 240 * args.rounds
        server = start_kafka(Path(kafka_dir.name), nodes=args.nodes, lifetime=lifetime)
    else:
        kafka_dir = None
        server = EmbeddedBroker("127.0.0.1", free_port()).start()
    pids = ([p for p in server.pids if p is not None] if isinstance(server, LocalKafka)
            else [server.process.pid] if server.process is not None else [])
    reaper = Reaper(f"failover {args.broker}", pids, ROUND_LIFETIME * (args.rounds + 1)).start()
    results = []
    try:
        for i in range(args.rounds):
            if args.keep is not None:
                r = one_round(server.url, args.keep / f"round-{i + 1}", env)
            else:
                with tempfile.TemporaryDirectory() as d:
                    r = one_round(server.url, Path(d), env)
            results.append(r)
            print(json.dumps({"round": i + 1, **r}), flush=True)
    finally:
        reaper.stop()
        server.stop()
        if kafka_dir is not None:
            kafka_dir.cleanup()
    times = [r["failover_s"] for r in results if r.get("ok") and r.get("failover_s") is not None]
    ok = sum(1 for r in results if r.get("ok"))
    print(f"\nmachine: {platform.node()} {platform.machine()} {platform.python_version()}, "
          f"date {time.strftime('%Y-%m-%d')}")
    print(f"broker: {where}; worker session timeout {session}")
    print(f"rounds {len(results)}, correct (lost 0, stuck 0, no unexpected re-run) {ok}")
    if times:
        q = sorted(times)
        print(f"kill -> first re-run start (s): min {q[0]:.2f}  median {statistics.median(q):.2f}  "
              f"max {q[-1]:.2f}  all {[round(t, 2) for t in q]}")
    return 0 if ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
