"""The ``yadtq`` command: parses its arguments, sets up logging, runs the subcommand.

The subcommands live in :mod:`.cli_servers` (``broker``, ``kafka``, ``worker``, ``run``),
:mod:`.cli_tasks` (``submit``, ``status``, ``cancel``, ``retry``, ``workers``,
``dead-letters``), :mod:`.cli_watch` (``wait``, ``top``) and :mod:`.cli_info`; with
:mod:`.cli_views` (tables, progress bars), the only code that prints for the user.

::

    yadtq broker [--host H] [--port P]       the embedded broker, in the foreground
    yadtq kafka [--nodes N] [--port P] [--data-dir D]   Apache Kafka (KRaft), in the foreground
    yadtq worker [--web-port W] [--data-dir D]
    yadtq run [--port P] [--web-port W] [--workers N]   embedded broker + workers (make run)
    yadtq submit multiply 4 5 [--wait] [--json]
    yadtq status ID [--json]
    yadtq cancel ID / yadtq retry ID [--json]
    yadtq dead-letters [--limit N] [--json]
    yadtq workers [--json]
    yadtq wait ID [ID ...] [--timeout S] [--json]
    yadtq top [--interval S] [--once]
    yadtq info [--json] [--local]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING, Optional, Sequence, TypeAlias

from .cli_info import cmd_info
from .cli_servers import cmd_broker, cmd_kafka, cmd_run, cmd_worker
from .cli_tasks import DEFAULT_URL, cmd_cancel, cmd_dead_letters, cmd_retry, cmd_status, cmd_submit, cmd_workers
from .cli_watch import cmd_top, cmd_wait
from .errors import ClientError, TaskFailed, YadtqError

__all__ = ["main", "build_parser"]

if TYPE_CHECKING:
    #: ``add_subparsers()``'s return type, which argparse names privately.
    Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")


def build_parser() -> argparse.ArgumentParser:
    """The ``yadtq`` argument parser: every subcommand, its options and its function (``func``)."""
    p = argparse.ArgumentParser(prog="yadtq", description="yadtq: a distributed task queue on Faust and Kafka")
    p.add_argument("--log-level", default=os.environ.get("YADTQ_LOG_LEVEL", "warning"),
                   help="debug, info, warning (default, or YADTQ_LOG_LEVEL), error or critical; for "
                        "`run` and `worker` too (give it before the command: yadtq --log-level info run)")
    sub = p.add_subparsers(dest="command", required=True)
    _add_server_commands(sub)
    _add_task_commands(sub)
    _add_watch_commands(sub)
    i = sub.add_parser("info", help="broker, topics, and the tasks a worker registers")
    _with_url(i)
    i.add_argument("--local", action="store_true",
                   help="list the tasks of this folder's YADTQ_TASK_MODULES instead of asking a worker")
    i.set_defaults(func=cmd_info)
    return p


def _with_url(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--url", default=os.environ.get("YADTQ_URL", DEFAULT_URL), help="any worker's HTTP API")
    sp.add_argument("--json", action="store_true", help="print JSON")


def _add_server_commands(sub: Commands) -> None:
    """``broker``, ``kafka``, ``worker``, ``run``."""
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


def _add_task_commands(sub: Commands) -> None:
    """``submit``, ``cancel``, ``retry``, ``status``, ``dead-letters``, ``workers``."""
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
    _with_url(s)
    s.set_defaults(func=cmd_submit)

    for name, func, text in (("cancel", cmd_cancel, "cancel a waiting or running task"),
                             ("retry", cmd_retry, "run a failed or cancelled task again"),
                             ("status", cmd_status, "show a task's status")):
        by_id = sub.add_parser(name, help=text)
        by_id.add_argument("task_id", help="the task's id")
        _with_url(by_id)
        by_id.set_defaults(func=func)

    dl = sub.add_parser("dead-letters", help="list tasks that will never run (invalid, or out of retries)")
    dl.add_argument("--limit", type=int, default=100, help="show at most this many, the newest (default 100)")
    _with_url(dl)
    dl.set_defaults(func=cmd_dead_letters)

    ws = sub.add_parser("workers", help="list workers")
    _with_url(ws)
    ws.set_defaults(func=cmd_workers)


def _add_watch_commands(sub: Commands) -> None:
    """``wait`` and ``top``."""
    wt = sub.add_parser("wait", help="wait for tasks to finish; a summary table (exit 1 if any did not succeed)")
    wt.add_argument("task_ids", nargs="+", metavar="ID", help="the tasks' ids")
    wt.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                    help="stop waiting after this long (default 60); a task not finished by then counts as failed")
    _with_url(wt)
    wt.set_defaults(func=cmd_wait)

    tp = sub.add_parser("top", help="a live view of the workers: counters, tasks/s, queued tasks (Ctrl-C quits)")
    tp.add_argument("--url", default=os.environ.get("YADTQ_URL", DEFAULT_URL), help="any worker's HTTP API")
    tp.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                    help="how often to ask the workers (default 2)")
    tp.add_argument("--once", action="store_true", help="print one frame and exit (no tasks/s: that takes two)")
    tp.set_defaults(func=cmd_top)


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
