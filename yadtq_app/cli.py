"""The ``yadtq`` command: parses its arguments, sets up logging, runs the subcommand.

With :mod:`.cli_views` (tables, progress bars) and :mod:`.cli_watch` (``wait``, ``top``),
the only code that prints for the user.

::

    yadtq broker [--host H] [--port P]       the embedded broker, in the foreground
    yadtq kafka [--nodes N] [--port P] [--data-dir D]   Apache Kafka (KRaft), in the foreground
    yadtq worker [--web-port W] [--data-dir D]
    yadtq run [--port P] [--web-port W] [--workers N]   embedded broker + workers (make run)
    yadtq submit multiply 4 5 [--wait] [--json]
    yadtq status ID [--json]
    yadtq workers [--json]
    yadtq wait ID [ID ...] [--timeout S] [--json]
    yadtq top [--interval S] [--once]
    yadtq info [--json] [--local]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from . import cli_views as views
from .cli_watch import cmd_top, cmd_wait
from .errors import ClientError, TaskFailed, YadtqError

__all__ = ["main"]

logger = logging.getLogger("yadtq_app.cli")

DEFAULT_URL = "http://127.0.0.1:6066"
#: Tasks per request of ``submit --file`` (the most ``POST /tasks`` takes).
SUBMIT_CHUNK = 1000


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")


def _parse_value(text: str) -> Any:
    """CLI arguments are JSON when they parse as JSON (``4`` → 4), strings otherwise."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _client(args: argparse.Namespace) -> Any:
    from .client import Client

    return Client(args.url)


def cmd_broker(args: argparse.Namespace) -> int:
    from .broker import EmbeddedBroker

    broker = EmbeddedBroker(args.host, args.port)
    broker.start()
    print(f"embedded broker ready at {broker.url} (pid {broker.process.pid if broker.process else '?'}); "
          "Ctrl-C stops it", flush=True)
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        while not stop["now"] and broker.process is not None and broker.process.poll() is None:
            time.sleep(0.2)
        code = broker.process.returncode if broker.process is not None else 0
    finally:
        broker.stop()
    if not stop["now"]:
        print(f"embedded broker exited with code {code}", file=sys.stderr)
        return 1
    return 0


def cmd_kafka(args: argparse.Namespace) -> int:
    """Apache Kafka from Maven's jars (``make kafka-jars``), until Ctrl-C."""
    from .kafka_local import LocalKafka

    data_dir = args.data_dir or f".yadtq/kafka/nodes-{args.nodes}"
    kafka = LocalKafka(args.nodes, data_dir=data_dir, port=args.port, max_lifetime=args.max_lifetime)
    signal.signal(signal.SIGTERM, _interrupt)  # stop the nodes as on Ctrl-C, even while starting
    try:
        kafka.start()
        replication = ("\n    export YADTQ_REPLICATION_FACTOR=3 YADTQ_MIN_INSYNC_REPLICAS=2"
                       if args.nodes >= 3 else "")
        print(f"Apache Kafka ready: {args.nodes} node(s) at {kafka.bootstrap} (pids {kafka.pids}); "
              f"data and logs in {data_dir}", flush=True)
        print(f"""
Point yadtq at it (loopback addresses select the embedded broker's profile unless told):
    export YADTQ_BROKER_URL='{kafka.url}'
    export YADTQ_BROKER_PROFILE=kafka{replication}
Ctrl-C stops it.""", flush=True)
        code = kafka.wait()
    except KeyboardInterrupt:
        print("stopping Kafka...", flush=True)
        return 0
    finally:
        kafka.stop()
    print(f"a Kafka node exited with code {code}; its log is in {data_dir}", file=sys.stderr)
    return 1


#: Faust's worker takes these level names only; accept the logging module's too.
_FAUST_LEVELS = {"critical": "crit", "fatal": "crit", "warning": "warn"}


def _faust_level(level: str) -> str:
    name = level.strip().lower()
    name = _FAUST_LEVELS.get(name, name)
    if name not in ("crit", "error", "warn", "info", "debug"):
        raise YadtqError(f"YADTQ_LOG_LEVEL={level!r}: use debug, info, warning, error or critical")
    return name


def cmd_worker(args: argparse.Namespace) -> int:
    if args.web_port is not None:
        os.environ["YADTQ_WEB_PORT"] = str(args.web_port)
    if args.data_dir is not None:
        os.environ["YADTQ_DATA_DIR"] = args.data_dir
    from .broker import port_is_free
    from .settings import Settings

    wanted = Settings.from_env()
    if not port_is_free(wanted.web_host, wanted.web_port):
        raise YadtqError(f"port {wanted.web_port} is taken: give this worker another with --web-port "
                         "(or YADTQ_WEB_PORT)")
    from .application import app, settings

    level = _faust_level(settings.log_level)
    # Faust's banner box only where its INFO lines are wanted too.
    quiet = ["--quiet"] if level in ("warn", "error", "crit") else []
    argv = ["yadtq", *quiet, "worker", "--loglevel", level, "--web-port", str(settings.web_port),
            "--web-host", settings.web_host]
    sys.argv = argv
    app.main()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Embedded broker and ``--workers`` workers, until Ctrl-C."""
    from .broker import EmbeddedBroker, port_is_free
    from .errors import BrokerError
    from .settings import Settings

    settings = Settings.from_env()
    host, port = settings.broker_hosts[0]
    port = args.port if args.port is not None else port
    first = args.web_port if args.web_port is not None else settings.web_port
    if args.workers < 1:
        raise YadtqError("--workers must be at least 1")
    web_ports = [first + i for i in range(args.workers)]
    for web_port in web_ports:
        if not port_is_free(settings.web_host, web_port):
            raise YadtqError(f"port {web_port} is taken (a worker's HTTP API): choose another with --web-port "
                             "(make run WEB_PORT=...)")
    broker = EmbeddedBroker(host, port, log_path=".yadtq/broker.log")
    try:
        broker.start()
    except BrokerError as exc:
        raise YadtqError(f"{exc}: choose another broker port with --port (make run PORT=...)") from None
    # Workers log at the CLI's level: warnings and yadtq's own lines unless --log-level says more.
    env = dict(os.environ, YADTQ_BROKER_URL=broker.url, YADTQ_LOG_LEVEL=args.log_level)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for web_port in web_ports:
            # The embedded broker starts empty: a worker notices its tables are from an
            # earlier broker and rebuilds them (yadtq_app.datadir).
            # Own session: on Ctrl-C we stop the workers first, then the broker, in that order.
            workers.append(subprocess.Popen([sys.executable, "-m", "yadtq_app.cli", "worker"],
                                            env=dict(env, YADTQ_WEB_PORT=str(web_port)), start_new_session=True))
        urls = [f"http://{settings.web_host}:{p}" for p in web_ports]
        for worker, url in zip(workers, urls):
            _wait_for_http(url + "/health", worker, timeout=120)
        _wait_for_workers(urls[0], len(workers), timeout=60)
        print(_banner(broker.url, workers, urls), flush=True)
        signal.signal(signal.SIGTERM, _interrupt)
        while all(w.poll() is None for w in workers):
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("stopping the workers and the broker...", flush=True)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        broker.stop()
        print("stopped.", flush=True)
    return 0


def _banner(broker_url: str, workers: "list[subprocess.Popen[bytes]]", urls: list[str]) -> str:
    """What ``yadtq run`` prints once its workers answer: how to try them."""
    url = urls[0]
    flag = "" if url == DEFAULT_URL else f" --url {url}"
    running = "\n".join(f"    worker pid {w.pid} at {u}" for w, u in zip(workers, urls))
    return f"""
yadtq is running: broker {broker_url}
{running}

Try, in another terminal (with .venv/bin on PATH, or prefix .venv/bin/):
    yadtq submit multiply 4 5 --wait{flag}
    curl -s -X POST {url}/tasks -H 'content-type: application/json' \\
         -d '{{"task-id": "banner-1", "task": "multiply", "args": [4, 5]}}'
    curl -s {url}/tasks/banner-1
    yadtq workers{flag}
    yadtq top{flag}
Dashboard: {url}/
Ctrl-C stops the workers and the broker."""


def _wait_for_workers(url: str, n: int, timeout: float) -> None:
    """Until ``GET /workers`` lists ``n`` alive workers (or ``timeout`` passed: go on anyway)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            rows = httpx.get(url + "/workers", timeout=2).json()["workers"]
            if sum(1 for w in rows if w.get("alive")) >= n:
                return
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            pass
        time.sleep(0.2)
    logger.warning("not every worker shows in %s/workers yet", url)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _wait_for_http(url: str, proc: "subprocess.Popen[bytes]", timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise YadtqError(f"the worker exited with code {proc.returncode} while starting")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise YadtqError(f"the worker did not answer on {url} within {timeout:g} s")


def cmd_submit(args: argparse.Namespace) -> int:
    if args.file is not None:
        if args.task is not None or args.wait:
            raise YadtqError("--file takes no task name, arguments or --wait")
        return _submit_file(args)
    if args.task is None:
        raise YadtqError("give a task name, or --file")
    client = _client(args)
    kwargs = {}
    for item in args.kwarg or []:
        if "=" not in item:
            raise YadtqError(f"--kwarg takes NAME=VALUE, not {item!r}")
        k, v = item.split("=", 1)
        kwargs[k] = _parse_value(v)
    handle = client.send_task(args.task, [_parse_value(a) for a in args.args], kwargs, task_id=args.task_id,
                              countdown=args.countdown, eta=args.eta, max_retries=args.max_retries,
                              timeout=args.time_limit)
    if not args.wait:
        print(json.dumps({"task-id": handle.id}) if args.json else handle.id)
        return 0
    info = handle.wait(timeout=args.timeout)
    if args.json:
        print(json.dumps(info, indent=2))
    elif info["status"] == "success":
        print(json.dumps(info["result"]))
    elif info["status"] == "cancelled":
        message = (info.get("error") or {}).get("message")
        print(f"yadtq: task {handle.id} was cancelled" + (f" ({message})" if message else ""), file=sys.stderr)
    elif info["status"] == "failed":
        err = info.get("error") or {}
        print(f"yadtq: task {handle.id} failed: {err.get('type')}: {err.get('message')}", file=sys.stderr)
    else:
        print(f"yadtq: task {handle.id} is still {info['status']} after {args.timeout:g} s", file=sys.stderr)
    return 0 if info["status"] == "success" else 1


def _read_jsonl(path: str) -> list[dict[str, Any]]:
    """The objects of a JSON-lines file (``-``: standard input), blank lines skipped."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise YadtqError(f"cannot read {path}: {exc}") from None
    bodies = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            body = json.loads(line)
        except ValueError as exc:
            raise YadtqError(f"{path}, line {number}: not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise YadtqError(f"{path}, line {number}: each line must be a JSON object with a 'task' field")
        bodies.append(body)
    return bodies


def _submit_file(args: argparse.Namespace) -> int:
    bodies = _read_jsonl(args.file)
    if not bodies:
        raise YadtqError(f"{args.file}: no tasks in it")
    client = _client(args)
    answers: list[dict[str, Any]] = []
    # A request per chunk (as submit_many sends them), so that the bar moves.
    progress = views.progress_bar(views.make_console(stderr=True))
    with progress:
        bar = progress.add_task("submitting", total=len(bodies))
        for start in range(0, len(bodies), SUBMIT_CHUNK):
            answers += client.submit_many(bodies[start:start + SUBMIT_CHUNK], chunk=SUBMIT_CHUNK)
            progress.advance(bar, len(bodies[start:start + SUBMIT_CHUNK]))
    refused = 0
    for number, answer in enumerate(answers, 1):
        if "error" in answer:
            refused += 1
            print(f"yadtq: task {number} refused: {answer['error']} ({answer.get('reason')})", file=sys.stderr)
        if args.json:
            print(json.dumps(answer))
        elif "error" not in answer:
            print(answer["task-id"])
    if refused:
        print(f"yadtq: {refused} of {len(answers)} tasks refused; the others were submitted", file=sys.stderr)
    return 1 if refused else 0


def cmd_status(args: argparse.Namespace) -> int:
    info = _client(args).get_task(args.task_id)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    out = views.make_console()
    views.show(out, views.status_view(out, info, time.time()))
    return 0


def cmd_workers(args: argparse.Namespace) -> int:
    workers = _client(args).workers()
    if args.json:
        print(json.dumps(workers, indent=2))
        return 0
    out = views.make_console()
    views.show(out, views.workers_table(out, workers, time.time()))
    differ = [w for w in workers if w.get("tasks_differ")]
    if differ:
        print("\nThe alive workers do not register the same tasks (every worker must load the same "
              "YADTQ_TASK_MODULES):")
        everywhere = set.intersection(*(set(w.get("tasks") or []) for w in differ))
        for w in differ:
            only = sorted(set(w.get("tasks") or []) - everywhere)
            print(f"  {w['id']}: only it has {', '.join(only) or 'nothing more'}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    answer = _client(args).cancel(args.task_id)
    print(json.dumps(answer) if args.json else f"cancel requested for {args.task_id} (it was {answer['status']})")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    answer = _client(args).retry(args.task_id)
    print(json.dumps(answer) if args.json else f"{args.task_id} queued again (it was {answer['status']})")
    return 0


def cmd_dead_letters(args: argparse.Namespace) -> int:
    letters = _client(args).dead_letters(limit=args.limit)
    if args.json:
        print(json.dumps(letters, indent=2))
        return 0
    out = views.make_console()
    views.show(out, views.dead_letters_table(out, letters))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """The broker and topics (from this environment's settings) and the tasks a worker
    registers (asked of ``--url``), or this folder's task modules with ``--local``."""
    from .admin import describe_topics
    from .security import client_options
    from .settings import Settings

    settings = Settings.from_env()
    if args.local:
        from .registry import default_registry, describe_task

        default_registry.load_modules(settings.task_modules)
        registry: dict[str, Any] = {"worker": None, "task_modules": list(settings.task_modules),
                                    "tasks_digest": default_registry.digest(),
                                    "tasks": [describe_task(t, settings) for t in default_registry]}
    else:
        try:
            registry = _client(args).registry()
        except ClientError as exc:  # the broker and topics are still worth showing
            registry = {"error": f"{exc}; start a worker (make run), pass --url, or --local to list this folder's "
                                 "YADTQ_TASK_MODULES without a worker"}
    wanted = settings.topics()
    try:
        actual: Optional[dict[str, int]] = asyncio.run(
            asyncio.wait_for(describe_topics(settings.bootstrap_servers, wanted,
                                                client_options=client_options(settings)), 10))
    except Exception as exc:  # noqa: BLE001 - info still shows the configuration
        logger.debug("could not describe topics: %s", exc)
        actual = None
    info = {
        "broker_url": settings.broker_url,
        "broker_profile": settings.resolved_profile,
        "broker_reachable": actual is not None,
        "topics": [{"name": n, "partitions": p, "exists": None if actual is None else n in actual,
                    "broker_partitions": None if actual is None else actual.get(n)} for n, p in wanted.items()],
        "tasks_from": "local" if args.local else args.url,
        **{k: registry.get(k) for k in ("worker", "task_modules", "tasks_digest", "tasks")},
    }
    if args.json:
        print(json.dumps({**info, "error": registry.get("error")} if "error" in registry else info, indent=2))
        return 2 if "error" in registry else 0
    print(f"broker   {info['broker_url']} (profile {info['broker_profile']}"
          f"{'' if actual is not None else ', not reachable'})")
    print("topics")
    for t in info["topics"]:
        state = "" if actual is None else ("" if t["exists"] else "  (not created yet)")
        count = t["partitions"]
        print(f"  {t['name']:40} {count} partition{'' if count == 1 else 's'}{state}")
    if "error" in registry:
        print(f"yadtq: tasks: {registry['error']}", file=sys.stderr)
        return 2
    source = "this folder's task modules (--local)" if args.local else f"worker {info['worker']} at {args.url}"
    print(f"tasks of {source}: {', '.join(info['task_modules'] or [])}")
    for t in info["tasks"] or []:
        kind = "async" if t["async"] else ("process" if t["process"] else "thread")
        print(f"  {t['name']:24} {kind:8} timeout {t['timeout']:g} s, max_retries {t['max_retries']}"
              f"{'  ' + t['doc'] if t.get('doc') else ''}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="yadtq", description="yadtq: a distributed task queue on Faust and Kafka")
    p.add_argument("--log-level", default=os.environ.get("YADTQ_LOG_LEVEL", "warning"),
                   help="debug, info, warning (default, or YADTQ_LOG_LEVEL), error or critical; for "
                        "`run` and `worker` too (give it before the command: yadtq --log-level info run)")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("broker", help="run the embedded broker in the foreground")
    b.add_argument("--host", default="127.0.0.1", help="the address it listens on (default 127.0.0.1)")
    b.add_argument("--port", type=int, default=9092, help="the port it listens on (default 9092)")
    b.set_defaults(func=cmd_broker)

    k = sub.add_parser("kafka", help="run Apache Kafka (KRaft, from `make kafka-jars`) in the foreground")
    k.add_argument("--nodes", type=int, default=1, help="1, or 3 for a replicated cluster")
    k.add_argument("--port", type=int, default=9092, help="the first node's client port; the others follow")
    k.add_argument("--data-dir", help="data, config and logs (default .yadtq/kafka/nodes-N, kept between runs)")
    k.add_argument("--max-lifetime", type=float, metavar="SECONDS",
                   help="kill the nodes after this long, even if this command is killed first")
    k.set_defaults(func=cmd_kafka)

    w = sub.add_parser("worker", help="run a worker (settings from YADTQ_* variables)")
    w.add_argument("--web-port", type=int, help="its HTTP API port (default YADTQ_WEB_PORT, 6066)")
    w.add_argument("--data-dir", help="its tables' folder (default YADTQ_DATA_DIR, .yadtq/worker-<web port>)")
    w.set_defaults(func=cmd_worker)

    r = sub.add_parser("run", help="embedded broker and workers, until Ctrl-C (make run)")
    r.add_argument("--port", type=int, help="the embedded broker's port (default: YADTQ_BROKER_URL's, 9092)")
    r.add_argument("--web-port", type=int,
                   help="the first worker's HTTP port (default: YADTQ_WEB_PORT, 6066); the others take the next")
    r.add_argument("--workers", type=int, default=1, metavar="N", help="how many workers to start (default 1)")
    r.set_defaults(func=cmd_run)

    def with_url(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--url", default=os.environ.get("YADTQ_URL", DEFAULT_URL), help="any worker's HTTP API")
        sp.add_argument("--json", action="store_true", help="print JSON")

    s = sub.add_parser("submit", help="submit a task (or many, --file); prints its id")
    s.add_argument("task", nargs="?", help="the registered task's name")
    s.add_argument("args", nargs="*", help="arguments (JSON where they parse as JSON)")
    s.add_argument("--kwarg", action="append", metavar="NAME=VALUE",
                   help="a keyword argument (JSON where it parses as JSON); repeat for more")
    s.add_argument("--task-id", help="the task's id (default: a new random one); an id that exists is not run again")
    s.add_argument("--countdown", type=float, metavar="SECONDS", help="start no earlier than this from now")
    s.add_argument("--eta", metavar="TIME", help="start no earlier than this ISO 8601 time")
    s.add_argument("--max-retries", type=int, metavar="N", help="retries after a failure (overrides the task's)")
    s.add_argument("--time-limit", type=float, metavar="SECONDS", help="the task's time limit (overrides the task's)")
    s.add_argument("--file", metavar="PATH",
                   help="submit the tasks in this JSON-lines file ('-': standard input), one wire-format object "
                        "per line ({\"task\": ..., \"args\": [...]}), 1,000 per request; prints each id")
    s.add_argument("--wait", action="store_true", help="wait for the result and print it")
    s.add_argument("--timeout", type=float, default=60.0, help="how long --wait waits (seconds)")
    with_url(s)
    s.set_defaults(func=cmd_submit)

    for name, func, text in (("cancel", cmd_cancel, "cancel a waiting or running task"),
                             ("retry", cmd_retry, "run a failed or cancelled task again"),
                             ("status", cmd_status, "show a task's status")):
        by_id = sub.add_parser(name, help=text)
        by_id.add_argument("task_id", help="the task's id")
        with_url(by_id)
        by_id.set_defaults(func=func)

    dl = sub.add_parser("dead-letters", help="list tasks that will never run (invalid, or out of retries)")
    dl.add_argument("--limit", type=int, default=100, help="show at most this many, the newest (default 100)")
    with_url(dl)
    dl.set_defaults(func=cmd_dead_letters)

    ws = sub.add_parser("workers", help="list workers")
    with_url(ws)
    ws.set_defaults(func=cmd_workers)

    wt = sub.add_parser("wait", help="wait for tasks to finish; a summary table (exit 1 if any did not succeed)")
    wt.add_argument("task_ids", nargs="+", metavar="ID", help="the tasks' ids")
    wt.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                    help="stop waiting after this long (default 60); a task not finished by then counts as failed")
    with_url(wt)
    wt.set_defaults(func=cmd_wait)

    tp = sub.add_parser("top", help="a live view of the workers: counters, tasks/s, queued tasks (Ctrl-C quits)")
    tp.add_argument("--url", default=os.environ.get("YADTQ_URL", DEFAULT_URL), help="any worker's HTTP API")
    tp.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                    help="how often to ask the workers (default 2)")
    tp.add_argument("--once", action="store_true", help="print one frame and exit (no tasks/s: that takes two)")
    tp.set_defaults(func=cmd_top)

    i = sub.add_parser("info", help="broker, topics, and the tasks a worker registers")
    with_url(i)
    i.add_argument("--local", action="store_true",
                   help="list the tasks of this folder's YADTQ_TASK_MODULES instead of asking a worker")
    i.set_defaults(func=cmd_info)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    # Task modules are found in the current folder, as ``python -m`` and Faust find them
    # (the ``yadtq`` script's own folder is .venv/bin). Last, so it shadows nothing.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command not in ("worker",):
        setup_logging(args.log_level)
    try:
        return int(args.func(args))
    except TaskFailed as exc:
        print(f"yadtq: {exc}", file=sys.stderr)
        return 1
    except (YadtqError, ClientError) as exc:
        print(f"yadtq: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
