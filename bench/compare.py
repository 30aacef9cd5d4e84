"""Compare yadtq with Celery 5 and taskiq (both on Redis): throughput, latency, failover.

Starts what it needs: per run and worker count N (1, 2, 4), a fresh broker and N
``yadtq worker`` processes (tasks submitted over HTTP and through a Kafka producer),
once on the embedded broker and once on Apache Kafka (one KRaft node, from
``make kafka-jars``; rows "yadtq AK"); beside each, on a fresh broker of the same kind,
the bare-Faust floor with N workers (rows "Faust floor", ``bench/floor_target.py``); one
``redis-server`` on a free loopback port for the peers, and their workers (Celery
prefork with 2 processes, taskiq with 2 worker processes). Every figure is measured
``--runs`` times; the table shows the median, min–max and (yadtq, floor) ÷ peer ratios, then
yadtq-through-Kafka ÷ floor and bulk ÷ Kafka (``bench/ratios.py``); a full run appends
them, dated, with the machine, to bench/RESULTS.md.

    make bench                                        # full: 10,000 tasks, 200 round trips, 3 runs
    bench/.venv/bin/python bench/compare.py --quick   # 500 tasks, 30 round trips, 1 run; prints only

Runs from bench/.venv (``make bench`` creates it: yadtq editable plus the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Iterator, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.apache_kafka import kafka_problem  # noqa: E402
from bench.common import CONCURRENCY, Reaper  # noqa: E402
from bench.floor_target import FloorTarget  # noqa: E402
from bench.peer_targets import CeleryTarget, TaskiqTarget  # noqa: E402
from bench.plan import Step, cluster_steps  # noqa: E402
from bench.procs import BenchError, RedisServer  # noqa: E402
from bench.ratios import FLOOR_METHOD, TARGET, THROUGHPUT, floor_label, render_ratios  # noqa: E402
from bench.report import METHOD, Results, append_results, machine_info, machine_line, percentiles, render_table  # noqa: E402
from bench.yadtq_target import BROKERS, VIAS, YadtqTarget  # noqa: E402
from tests.support.cluster import free_port  # noqa: E402
from yadtq_app.kafka.fetch_wait import KAFKA_FETCH_MAX_WAIT_MS  # noqa: E402
from yadtq_app.settings import Settings  # noqa: E402

logger = logging.getLogger("bench.compare")

SYSTEMS = ("yadtq", "floor", "celery", "celery-ak", "taskiq")
PEER_LABELS = {"celery": "Celery", "celery-ak": "Celery AK", "taskiq": "taskiq"}
VIA_LABELS = {"http": "HTTP", "bulk": "HTTP bulk", "kafka": "Kafka"}


def yadtq_label(broker: str, fetch_wait: Optional[int]) -> str:
    """What a yadtq row's name says of its broker: nothing for the embedded one (as in
    earlier tables), "AK" for Apache Kafka, and the fetch wait when it is not the profile's."""
    if broker != "kafka":
        return ""
    return "AK " if fetch_wait is None else f"AK fetch {fetch_wait} ms "


FAILOVER = "failover (s)"
#: Round trips the floor makes before those measured (as yadtq's warm-up does).
FLOOR_WARM_UP = 20


class Interrupted(BaseException):
    """SIGTERM, SIGINT or the time limit: stop what was started, then exit."""


class Bench:
    """One benchmark session: settings, deadline, scratch directory and the figures so far."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.deadline: float = time.monotonic() + float(args.time_limit)
        self.results = Results()
        self.raw: list[dict[str, Any]] = []
        self.failures: list[str] = []

    def remaining(self) -> float:
        """Lifetime for processes started now: until the benchmark's own deadline, plus a margin."""
        return max(1.0, self.deadline - time.monotonic()) + 30

    def record_latency(self, system: str, run: int, samples: list[float]) -> None:
        p = percentiles(samples)
        for q, v in p.items():
            self.results.add(f"latency {q} (ms)", system, v)
        self.raw.append({"run": run, "system": system, "figure": "latency_ms", "samples": samples})
        logger.info("%s run %d latency: p50 %.2f p95 %.2f p99 %.2f ms (%d round trips)", system, run + 1,
                    p["p50"], p["p95"], p["p99"], len(samples))

    def record_throughput(self, system: str, run: int, sample: Any) -> None:
        self.results.add(THROUGHPUT, system, sample.tasks_per_s)
        self.raw.append({"run": run, "system": system, "figure": "throughput", "n": sample.n,
                         "submit_s": sample.submit_s, "total_s": sample.total_s, **sample.extra})
        logger.info("%s run %d throughput: %.0f tasks/s (%d tasks: submitted in %.2f s, last done at %.2f s, "
                    "all confirmed at %.2f s)", system, run + 1, sample.tasks_per_s, sample.n, sample.submit_s,
                    sample.extra.get("last_done_s", float("nan")), sample.total_s)

    def attempt(self, what: str, fn: Callable[[], None]) -> None:
        """Run one system's run; a failure is reported and the rest of the benchmark goes on."""
        try:
            fn()
        except BenchError as exc:
            logger.error("%s failed: %s", what, exc)
            self.failures.append(f"{what}: {str(exc)[:300]}")
        except Exception as exc:
            logger.exception("%s failed", what)
            self.failures.append(f"{what}: {type(exc).__name__}: {str(exc)[:300]}")

    # -- systems ----------------------------------------------------------------------------------

    def run_yadtq(self, run: int, n_workers: int, broker: str, fetch_wait: Optional[int] = None) -> None:
        """One yadtq cluster: ``broker`` is ``embedded`` or ``kafka``; ``fetch_wait`` (ms), on
        Kafka, sets ``YADTQ_FETCH_MAX_WAIT_MS`` instead of the profile's."""
        a = self.args
        env = {} if fetch_wait is None else {"YADTQ_FETCH_MAX_WAIT_MS": str(fetch_wait)}
        label = yadtq_label(broker, fetch_wait)
        folder = f"yadtq-r{run}-w{n_workers}-{broker}" + ("" if fetch_wait is None else f"-fw{fetch_wait}")
        # Alternate which path goes first, so neither always meets a fuller status table.
        vias = a.via if run % 2 == 0 else list(reversed(a.via))

        def cluster(name: str) -> YadtqTarget:
            return YadtqTarget(n_workers, self.workdir / name, lifetime=self.remaining(), broker=broker,
                               extra_env=env)

        target = cluster(folder)
        try:
            target.start()
            target.warm_up()
            for via in vias:
                self.record_latency(f"yadtq {label}{n_workers}w {VIA_LABELS[via]}", run,
                                    target.latency(a.round_trips, via))
        finally:
            target.stop()
        # Each path's throughput on a fresh broker and workers, as the floor's: the embedded
        # broker slows once its partitions hold thousands of one-record batches (what single
        # submissions write), which made whichever path came after them look slower.
        for via in vias:
            target = cluster(f"{folder}-{via}")
            try:
                target.start()
                target.warm_up()
                self.record_throughput(f"yadtq {label}{n_workers}w {VIA_LABELS[via]}", run,
                                       target.throughput(a.tasks, via))
            finally:
                target.stop()

    def run_floor(self, run: int, n_workers: int, broker: str) -> None:
        """The bare-Faust floor with ``n_workers`` workers on a fresh ``broker``: throughput
        through Kafka (its rows: "Faust floor Nw", "Faust floor AK Nw"), then on Apache
        Kafka its round trips (on the embedded broker a held fetch is not woken by the
        row's write, so they would measure the client's fetch wait)."""
        target = FloorTarget(n_workers, self.workdir / f"floor-r{run}-w{n_workers}-{broker}",
                             lifetime=self.remaining(), broker=broker)
        label = floor_label(yadtq_label(broker, None), n_workers)
        try:
            target.start()
            self.record_throughput(label, run, target.throughput(self.args.tasks))
            if broker == "kafka":
                target.latency(FLOOR_WARM_UP)
                self.record_latency(label, run, target.latency(self.args.round_trips))
        finally:
            target.stop()

    def run_step(self, run: int, step: Step) -> None:
        """Measure one cluster of the run's plan (``bench/plan.py``)."""
        if step.system == "floor":
            self.run_floor(run, step.workers, step.broker)
        else:
            self.run_yadtq(run, step.workers, step.broker, step.fetch_wait)

    def run_peer(self, run: int, target: Any) -> None:
        a = self.args
        label = PEER_LABELS[target.name]
        try:
            target.start()
            target.warm_up()
            self.record_latency(label, run, target.latency(a.round_trips))
            self.record_throughput(label, run, target.throughput(a.tasks))
        finally:
            target.stop()

    def run_failover(self, rounds: int) -> None:
        from bench.failover import one_round
        from yadtq_app.broker import EmbeddedBroker

        broker = EmbeddedBroker("127.0.0.1", free_port(), log_path=str(self.workdir / "failover-broker.log")).start()
        assert broker.process is not None
        reaper = Reaper("failover broker", [broker.process.pid], self.remaining()).start()
        try:
            for i in range(rounds):
                if self.args.keep is not None:  # the workers' logs stay, e.g. to see why a round stalled
                    r = one_round(broker.url, self.workdir / f"failover-round-{i + 1}", {})
                else:
                    with tempfile.TemporaryDirectory(dir=self.workdir) as d:
                        r = one_round(broker.url, Path(d), {})
                self.raw.append({"run": i, "system": "yadtq 3w", "figure": "failover", **r})
                logger.info("failover round %d: %s", i + 1, json.dumps(r))
                if r.get("ok") and r.get("failover_s") is not None:
                    self.results.add(FAILOVER, "yadtq 3w kill -9", float(r["failover_s"]))  # type: ignore[arg-type]
                else:
                    self.failures.append(f"failover round {i + 1}: {r.get('error', 'no re-run measured')}")
        finally:
            reaper.stop()
            broker.stop()


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="development sizes (500 tasks, 30 round trips, 1 run); never writes RESULTS.md")
    ap.add_argument("--runs", type=int, help="runs per figure (default 3; quick 1)")
    ap.add_argument("--tasks", type=int, help="tasks per throughput run (default 10000; quick 500)")
    ap.add_argument("--round-trips", type=int, help="round trips per latency run (default 200; quick 30)")
    ap.add_argument("--workers", default="1,2,4", help="yadtq and floor worker counts (default 1,2,4)")
    ap.add_argument("--via", default="http,bulk,kafka", help="yadtq submission paths (default http,bulk,kafka)")
    ap.add_argument("--brokers", default=",".join(BROKERS),
                    help="brokers yadtq and the floor run on: embedded (Tansu), kafka (Apache Kafka, one node); "
                         "default both")
    ap.add_argument("--kafka-fetch-waits", default="profile", metavar="MS,...",
                    help="on Apache Kafka, one cluster per value: 'profile' (the kafka profile's own fetch "
                         "wait) or YADTQ_FETCH_MAX_WAIT_MS in ms (rows 'AK fetch MS ms'); default profile")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="systems to measure (default all)")
    ap.add_argument("--failover-rounds", type=int, help="yadtq failover rounds (default = runs; 0 skips)")
    ap.add_argument("--taskiq-broker", choices=["stream", "list"], default="stream",
                    help="taskiq-redis broker: RedisStreamBroker (acked, default) or ListQueueBroker")
    ap.add_argument("--time-limit", type=float, help="stop everything after this many seconds "
                    "(default 7200; quick 1500)")
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    ap.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    ap.add_argument("--json", type=Path, help="also write every raw sample to this file")
    ap.add_argument("--keep", type=Path, metavar="DIR",
                    help="work in DIR and keep it (broker, worker, Redis logs); default a temporary directory")
    ap.add_argument("--log-level", default="info")
    args = ap.parse_args(argv)
    quick = args.quick
    args.runs = args.runs or (1 if quick else 3)
    args.tasks = args.tasks or (500 if quick else 10_000)
    args.round_trips = args.round_trips or (30 if quick else 200)
    args.failover_rounds = args.runs if args.failover_rounds is None else args.failover_rounds
    args.time_limit = args.time_limit or (1500 if quick else 7200)
    args.workers = [int(w) for w in args.workers.split(",") if w]
    args.via = [v for v in args.via.split(",") if v]
    args.brokers = [b for b in args.brokers.split(",") if b]
    for b in args.brokers:
        if b not in BROKERS:
            ap.error(f"--brokers: {b!r} is not one of {', '.join(BROKERS)}")
    try:
        args.kafka_fetch_waits = [None if w == "profile" else int(w) for w in args.kafka_fetch_waits.split(",") if w]
    except ValueError:
        ap.error("--kafka-fetch-waits: 'profile' or whole milliseconds, comma-separated")
    if not args.kafka_fetch_waits:
        ap.error("--kafka-fetch-waits: at least one value")
    args.systems = [s for s in args.systems.split(",") if s]
    for v in args.via:
        if v not in VIAS:
            ap.error(f"--via: {v!r} is not one of {', '.join(VIAS)}")
    for s in args.systems:
        if s not in SYSTEMS:
            ap.error(f"--systems: {s!r} is not one of {', '.join(SYSTEMS)}")
    if args.round_trips < 2:
        ap.error("--round-trips must be at least 2")
    return args


def _interrupt(signum: int, frame: Optional[FrameType]) -> None:
    raise Interrupted(signal.Signals(signum).name if signum != signal.SIGALRM else "time limit")


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO),
                        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    for noisy in ("aiokafka", "kafka", "celery", "kombu", "taskiq", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGALRM, _interrupt)
    signal.alarm(int(args.time_limit))
    logger.info("%s: %d run(s), %d tasks, %d round trips, yadtq workers %s via %s on %s, systems %s, "
                "failover rounds %d", "quick" if args.quick else "full", args.runs, args.tasks, args.round_trips,
                args.workers, args.via, args.brokers, args.systems, args.failover_rounds)
    on_kafka = bool({"yadtq", "floor"} & set(args.systems)) and "kafka" in args.brokers
    if (on_kafka or "celery-ak" in args.systems) and kafka_problem():
        logger.error("cannot run on Apache Kafka: %s (or pass --brokers embedded and leave out celery-ak)",
                     kafka_problem())
        return 1
    peers = [s for s in args.systems if s in PEER_LABELS]
    interrupted: Optional[str] = None
    with _workdir(args.keep) as tmp:
        bench = Bench(args, Path(tmp))
        redis: Optional[RedisServer] = None
        try:
            if peers:
                redis = RedisServer(free_port(), lifetime=bench.remaining(), workdir=Path(tmp)).start()
                os.environ["BENCH_REDIS_URL"] = redis.url  # read by bench.peers.* on import
                logger.info("redis-server %s on %s", redis.version(), redis.url)
            for run in range(args.runs):
                for step in cluster_steps(run, systems=args.systems, workers=args.workers, brokers=args.brokers,
                                          kafka_fetch_waits=args.kafka_fetch_waits):
                    bench.attempt(step.describe(run), functools.partial(bench.run_step, run, step))
                for name in peers:
                    assert redis is not None
                    target: Any = (CeleryTarget(redis, Path(tmp), lifetime=bench.remaining(),
                                                kafka=name == "celery-ak") if name.startswith("celery")
                                   else TaskiqTarget(redis, Path(tmp), lifetime=bench.remaining(),
                                                     broker_kind=args.taskiq_broker))
                    bench.attempt(f"{name} run {run + 1}", functools.partial(bench.run_peer, run, target))
            if "yadtq" in args.systems and args.failover_rounds > 0:
                bench.attempt("failover", functools.partial(bench.run_failover, args.failover_rounds))
        except Interrupted as exc:
            interrupted = str(exc)
            logger.error("interrupted (%s): stopping everything started", interrupted)
        finally:
            signal.alarm(0)
            if redis is not None:
                redis.stop()
        return report(args, bench, interrupted)


@contextlib.contextmanager
def _workdir(keep: Optional[Path]) -> Iterator[str]:
    if keep is None:
        with tempfile.TemporaryDirectory(prefix="yadtq-bench-") as tmp:
            yield tmp
    else:
        keep.mkdir(parents=True, exist_ok=True)
        logger.info("logs kept in %s", keep)
        yield str(keep.resolve())


def report(args: argparse.Namespace, bench: Bench, interrupted: Optional[str]) -> int:
    info = machine_info()
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "args": {k: str(v) for k, v in vars(args).items()},
                                         "figures": bench.results.to_json(), "raw": bench.raw}, indent=1))
    if not bench.results.figures:
        logger.error("no figure was measured")
        return 1
    table = render_table(bench.results)
    ratios = render_ratios(bench.results)
    if ratios is not None:
        table += "\n\n" + ratios
    print(f"\n{'QUICK (development sizes, not recorded)' if args.quick else 'yadtq vs Celery vs taskiq'}"
          f" (yadtq on {' and '.join(args.brokers)}): "
          f"{args.runs} run(s), {args.tasks:,} tasks, {args.round_trips} round trips")
    print(f"machine: {machine_line(info)}")
    print(table)
    for f in bench.failures:
        print(f"FAILED: {f}")
    other_waits = [w for w in args.kafka_fetch_waits if w is not None]
    method = METHOD.format(tasks=args.tasks, round_trips=args.round_trips, concurrency=CONCURRENCY,
                           taskiq_broker=("RedisStreamBroker (acknowledged)" if args.taskiq_broker == "stream"
                                          else "ListQueueBroker (no acks)"),
                           kafka_wait=KAFKA_FETCH_MAX_WAIT_MS, linger=Settings().producer_linger_ms,
                           fetch_waits=("" if not other_waits else "; rows \"AK fetch N ms\" with "
                                        "`YADTQ_FETCH_MAX_WAIT_MS=N` instead"))
    if "floor" in args.systems:
        method += FLOOR_METHOD.format(target=TARGET)
    complete = not interrupted and not bench.failures
    if args.quick or args.no_write:
        logger.info("not written to %s (%s)", args.results, "--quick" if args.quick else "--no-write")
    elif not complete:
        logger.error("incomplete (%s): not written to %s", interrupted or "failures above", args.results)
    else:
        append_results(args.results, table, info, runs=args.runs, method=method)
        logger.info("appended to %s", args.results)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
