"""``yadtq wait``: watch tasks finish, from a terminal.

It asks a worker's HTTP API through :class:`yadtq_app.client.Client` and renders with
:mod:`yadtq_app.cli_views`; progress only on a terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable, Optional, Sequence

from . import cli_views as views
from .client import FINISHED, LONG_POLL_SECONDS, Client
from .errors import YadtqError

__all__ = ["cmd_wait", "wait_tasks"]


def wait_tasks(client: Client, task_ids: Sequence[str], timeout: float,
               on_finished: Callable[[dict[str, Any]], None] = lambda row: None) -> dict[str, dict[str, Any]]:
    """Wait until every task is final or ``timeout`` s passed; id → its status row then.

    Long-polls the first unfinished task, then asks about all the others at once, so
    no task waits behind a slow one; ``on_finished(row)`` once for each final row.
    :class:`YadtqError` naming the ids no worker knows (never submitted, or expired)."""
    deadline = time.monotonic() + timeout
    rows: dict[str, dict[str, Any]] = {}
    pending = list(dict.fromkeys(task_ids))

    def take(answers: dict[str, Optional[dict[str, Any]]]) -> None:
        nonlocal pending
        for task_id, row in answers.items():
            if row is None:
                continue
            was_final = rows.get(task_id, {}).get("status") in FINISHED
            rows[task_id] = row
            if row.get("status") in FINISHED and not was_final:
                on_finished(row)
        pending = [t for t in pending if rows[t].get("status") not in FINISHED]

    first = client.statuses(pending)
    unknown = [t for t in pending if first.get(t) is None]
    if unknown:
        raise YadtqError(f"unknown task id{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)} "
                         "(never submitted, or expired)")
    take(first)
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        take({pending[0]: client.get_task(pending[0], wait=min(remaining, LONG_POLL_SECONDS))})
        if pending:
            take(client.statuses(pending))
    return rows


def cmd_wait(args: argparse.Namespace) -> int:
    """Wait for ``args.task_ids``; a summary table (or JSON). 0: all succeeded; 1: some
    failed, were cancelled or did not finish within ``--timeout``."""
    if args.timeout <= 0:
        raise YadtqError("--timeout must be more than 0 seconds")
    ids = list(dict.fromkeys(args.task_ids))
    with Client(args.url) as client:
        progress = views.progress_bar(views.make_console(stderr=True), "waiting")
        with progress:
            bar = progress.add_task("waiting", total=len(ids))
            rows = wait_tasks(client, ids, args.timeout, lambda row: progress.advance(bar))
    ordered = [rows[t] for t in ids]
    if args.json:
        print(json.dumps(ordered, indent=2))
    else:
        out = views.make_console()
        views.show(out, views.summary_table(out, ordered))
    unfinished = [r for r in ordered if r.get("status") not in FINISHED]
    if unfinished:
        print(f"yadtq: {len(unfinished)} of {len(ordered)} task(s) not finished after {args.timeout:g} s "
              f"(e.g. {unfinished[0]['task-id']}, {unfinished[0].get('status')})", file=sys.stderr)
    return 0 if all(r.get("status") == "success" for r in ordered) else 1
