"""The commands that run servers in the foreground: ``broker``, ``kafka``, ``worker``, ``run``.

Each returns the command's exit code; :class:`~yadtq_app.errors.YadtqError` for a
usage or start-up problem (``yadtq`` prints it and exits with 2).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any

from .cli_tasks import DEFAULT_URL
from .errors import YadtqError

__all__ = ["cmd_broker", "cmd_kafka", "cmd_worker", "cmd_run"]

# The name the CLI's log lines have always had (yadtq_app.cli), wherever the code lives.
logger = logging.getLogger("yadtq_app.cli")


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
    taken = [web_port for web_port in web_ports if not port_is_free(settings.web_host, web_port)]
    if taken:
        raise YadtqError(f"port {taken[0]} is taken (a worker's HTTP API): choose another with --web-port "
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
        _stop_workers(workers)
        broker.stop()
        print("stopped.", flush=True)
    return 0


def _stop_workers(workers: "list[subprocess.Popen[bytes]]") -> None:
    """SIGTERM every running worker, then wait 30 s for each (SIGKILL after)."""
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


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
