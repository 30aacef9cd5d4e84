"""The commands that ask a worker about tasks: ``submit``, ``status``, ``cancel``, ``retry``,
``workers``, ``dead-letters``.

Each returns the command's exit code; the client's errors reach ``yadtq``, which
prints them and exits with 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import cli_views as views
from .errors import YadtqError

if TYPE_CHECKING:
    from .client import Client

__all__ = ["cmd_submit", "cmd_status", "cmd_cancel", "cmd_retry", "cmd_workers", "cmd_dead_letters",
           "worker_client", "DEFAULT_URL", "SUBMIT_CHUNK"]

#: The worker ``--url`` names unless told (or ``YADTQ_URL``).
DEFAULT_URL = "http://127.0.0.1:6066"
#: Tasks per request of ``submit --file`` (the most ``POST /tasks`` takes).
SUBMIT_CHUNK = 1000


def _parse_value(text: str) -> Any:
    """CLI arguments are JSON when they parse as JSON (``4`` → 4), strings otherwise."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def worker_client(args: argparse.Namespace) -> Client:
    """A client of the worker at ``--url``."""
    from .client import Client

    return Client(args.url)


def cmd_submit(args: argparse.Namespace) -> int:
    if args.file is not None:
        if args.task is not None or args.wait:
            raise YadtqError("--file takes no task name, arguments or --wait")
        return _submit_file(args)
    if args.task is None:
        raise YadtqError("give a task name, or --file")
    client = worker_client(args)
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
    client = worker_client(args)
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
    info = worker_client(args).get_task(args.task_id)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    out = views.make_console()
    views.show(out, views.status_view(out, info, time.time()))
    return 0


def cmd_workers(args: argparse.Namespace) -> int:
    workers = worker_client(args).workers()
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
    answer = worker_client(args).cancel(args.task_id)
    print(json.dumps(answer) if args.json else f"cancel requested for {args.task_id} (it was {answer['status']})")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    answer = worker_client(args).retry(args.task_id)
    print(json.dumps(answer) if args.json else f"{args.task_id} queued again (it was {answer['status']})")
    return 0


def cmd_dead_letters(args: argparse.Namespace) -> int:
    letters = worker_client(args).dead_letters(limit=args.limit)
    if args.json:
        print(json.dumps(letters, indent=2))
        return 0
    out = views.make_console()
    views.show(out, views.dead_letters_table(out, letters))
    return 0
