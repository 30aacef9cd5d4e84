"""``yadtq wait`` and ``yadtq top``: watch tasks finish, and workers work, from a terminal.

Both ask a worker's HTTP API through :class:`yadtq_app.client.Client` and render with
:mod:`yadtq_app.cli_views`; progress and live redraws only on a terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable, Iterable, Optional, Sequence

import httpx
from rich.live import Live

from . import cli_views as views
from .client import FINISHED, LONG_POLL_SECONDS, Client
from .errors import ClientError, YadtqError

__all__ = ["cmd_wait", "cmd_top", "wait_tasks", "WorkerRates", "queued_by_worker"]


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
        progress = views.progress_bar(views.make_console(stderr=True))
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


class WorkerRates:
    """Tasks per second of each worker, from the counters of its successive heartbeats.

    A worker's counters change only with its heartbeats, so a rate is the change
    between its last two heartbeats over their times: steady, whatever ``top``'s
    interval. Done and failed tasks count."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int]] = {}
        #: Worker id → tasks/s (none until a worker's second heartbeat).
        self.rates: dict[str, float] = {}

    def update(self, workers: Iterable[dict[str, Any]]) -> dict[str, float]:
        """Take a sample of ``GET /workers`` rows; the rates. A worker whose counters
        went down (restarted) starts over; one not alive does nothing (0)."""
        rates: dict[str, float] = {}
        for w in workers:
            at, count = w.get("last_heartbeat"), int(w.get("tasks_done") or 0) + int(w.get("tasks_failed") or 0)
            if not isinstance(at, (int, float)):
                continue
            before = self._last.get(w["id"])
            if before is None or count < before[1]:
                self._last[w["id"]] = (at, count)
            elif at > before[0]:
                rates[w["id"]] = (count - before[1]) / (at - before[0])
                self._last[w["id"]] = (at, count)
            elif w["id"] in self.rates:
                rates[w["id"]] = self.rates[w["id"]]  # the same heartbeat as last time
            if w["id"] in rates and not w.get("alive"):
                rates[w["id"]] = 0.0
        self.rates = rates
        return rates


def queued_by_worker(workers: Iterable[dict[str, Any]], timeout: float = 1.0) -> dict[str, Optional[int]]:
    """Alive worker id → task messages not yet done in the partitions it holds (its
    heartbeat's ``partitions``), from the group's lag per partition that every worker
    reports on ``GET /metrics`` (``yadtq_consumer_lag``), asked of the first alive worker
    that answers; ``None`` for every worker when none does."""
    from prometheus_client.parser import text_string_to_metric_families

    alive = [w for w in workers if w.get("alive") and w.get("url")]
    lag: Optional[dict[int, int]] = None
    for w in alive:
        try:
            text = httpx.get(f"{w['url'].rstrip('/')}/metrics", timeout=timeout).text
            lag = {int(s.labels["partition"]): int(s.value) for family in text_string_to_metric_families(text)
                   if family.name == "yadtq_consumer_lag" for s in family.samples}
            break
        except (httpx.HTTPError, ValueError, KeyError):
            continue
    return {w["id"]: None if lag is None else sum(lag.get(int(p), 0) for p in w.get("partitions") or ())
            for w in alive}


def cmd_top(args: argparse.Namespace) -> int:
    """Workers, their counters, rates and queues, redrawn every ``--interval`` s on a
    terminal (printed one frame after another elsewhere) until Ctrl-C; ``--once``: one frame."""
    if args.interval <= 0:
        raise YadtqError("--interval must be more than 0 seconds")
    out = views.make_console()
    rates = WorkerRates()
    workers: list[dict[str, Any]] = []
    with Client(args.url, timeout=max(args.interval, 2.0)) as client:

        def frame() -> Any:
            nonlocal workers
            error = None
            try:
                workers = client.workers()
                rates.update(workers)
                queued = queued_by_worker(workers)
            except ClientError as exc:
                if args.once:
                    raise
                error, queued = f"{exc} (asking again every {args.interval:g} s)", {}
            return views.top_frame(out, workers, url=client.url, now=time.time(), rates=rates.rates,
                                   lag=queued, error=error, live=out.is_terminal and not args.once)

        if args.once:
            views.show(out, frame())
            return 0
        try:
            if not out.is_terminal:
                while True:
                    views.show(out, frame(), "")
                    time.sleep(args.interval)
            with Live(frame(), console=out, auto_refresh=False, redirect_stdout=False,
                      redirect_stderr=False) as live:
                while True:
                    time.sleep(args.interval)
                    live.update(frame(), refresh=True)
        except KeyboardInterrupt:
            return 0
