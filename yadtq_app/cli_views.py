"""What the ``yadtq`` command shows: tables, progress bars and ``yadtq top``'s frame, with rich.

On a terminal: colours (not with ``NO_COLOR``; no escape codes at all with ``TERM=dumb``),
a line under each table's header, progress bars on standard error. Piped: no escape codes
and no box lines, a table is a header line then one line per row, never folded (grep and
awk read it; ``--json`` is for programs), and progress bars show nothing. Functions here
render the rows they are given; they ask no worker anything.
"""

from __future__ import annotations

import json
import time
from typing import IO, Any, Iterable, Optional, Sequence

from rich import box
from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

__all__ = ["make_console", "show", "make_table", "progress_bar", "ago", "duration", "clock", "when", "ranges",
           "workers_table", "status_view", "history_table", "summary_table", "dead_letters_table", "top_frame"]

#: Width of output that is not a terminal: wide enough that no row folds.
PIPE_WIDTH = 1000
#: The longest result or error shown in a table cell (``--json`` has them whole).
CELL_CHARS = 80

STATUS_STYLES = {"success": "green", "failed": "bold red", "cancelled": "yellow", "processing": "cyan",
                 "retrying": "magenta", "queued": "blue", "scheduled": "blue"}


def make_console(*, stderr: bool = False, file: Optional[IO[str]] = None) -> Console:
    """A console on standard output (or error, or ``file``) that colours only a terminal
    and, elsewhere, never folds a line."""
    console = Console(file=file, stderr=stderr, highlight=False, emoji=False)
    if not console.is_terminal:
        console.width = PIPE_WIDTH
    return console


def show(console: Console, *renderables: RenderableType) -> None:
    """Print ``renderables`` on ``console``; off a terminal without the spaces that pad
    each line's last column."""
    if console.is_terminal:
        console.print(*renderables)
        return
    with console.capture() as captured:
        console.print(*renderables)
    console.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
    console.file.flush()


def make_table(console: Console, *headers: str, right: Sequence[str] = (), wrap: Sequence[str] = ()) -> Table:
    """An empty table with these column ``headers`` (those in ``right`` right-aligned):
    a line under the header on a terminal, plain columns elsewhere. On a narrow terminal
    only the columns in ``wrap`` fold; the others are cut short (…)."""
    terminal = console.is_terminal
    table = Table(box=box.SIMPLE_HEAD if terminal else None, pad_edge=False, show_edge=False, header_style="bold",
                  padding=(0, 1, 0, 0) if terminal else (0, 1))  # two spaces between columns, either way
    for header in headers:
        table.add_column(header, justify="right" if header in right else "left", no_wrap=header not in wrap)
    return table


def progress_bar(console: Console) -> Progress:
    """Transient progress bars (the task's description, a bar, done/total, elapsed) on
    ``console``, drawn only if it is a terminal. It leaves standard output alone: print after it stops."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True, disable=not console.is_terminal,
                    redirect_stdout=False, redirect_stderr=False)


def ago(seconds: Optional[float]) -> str:
    """``0.4 s ago``, ``12 s ago``, ``3 min ago``, ``5 h ago``, ``2 d ago``; ``-`` for none."""
    if not isinstance(seconds, (int, float)):
        return "-"
    return f"{duration(max(seconds, 0.0), coarse=True)} ago"


def duration(seconds: Optional[float], *, coarse: bool = False) -> str:
    """``12 ms``, ``1.25 s``, ``3 min 2 s``, ``5 h 3 min``; in one unit when ``coarse``."""
    if not isinstance(seconds, (int, float)):
        return "-"
    if seconds < 1 and not coarse:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f} s" if coarse else f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, hours, days = int(seconds // 60), int(seconds // 3600), int(seconds // 86400)
    if seconds < 3600:
        return f"{minutes} min" if coarse else f"{minutes} min {int(seconds % 60)} s"
    if seconds < 86400:
        return f"{hours} h" if coarse else f"{hours} h {minutes % 60} min"
    return f"{days} d" if coarse else f"{days} d {hours % 24} h"


def clock(value: Optional[float], now: float) -> str:
    """A Unix time as local ``HH:MM:SS`` (``MM-DD HH:MM:SS`` if not today); ``-`` for none."""
    if not isinstance(value, (int, float)):
        return "-"
    same_day = time.localtime(value)[:3] == time.localtime(now)[:3]
    return time.strftime("%H:%M:%S" if same_day else "%m-%d %H:%M:%S", time.localtime(value))


def when(value: Optional[float], now: float) -> str:
    """A Unix time as local date and time to the millisecond, and how long ago."""
    if not isinstance(value, (int, float)):
        return "-"
    exact = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value)) + f".{int(value % 1 * 1000):03d}"
    return f"{exact} ({ago(now - value)})" if value <= now else f"{exact} (in {duration(value - now, coarse=True)})"


def ranges(numbers: Iterable[int]) -> str:
    """``[0, 1, 2, 3, 7]`` as ``0-3,7``; ``-`` for none."""
    parts: list[str] = []
    run: list[int] = []
    for n in sorted(set(numbers)):
        if run and n != run[-1] + 1:
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
            run = []
        run.append(n)
    if run:
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(parts) or "-"


def _status(value: Any) -> Text:
    name = str(value or "-")
    return Text(name, style=STATUS_STYLES.get(name, ""))


def _error(error: Any) -> str:
    if not error:
        return ""
    if isinstance(error, dict):
        return f"{error.get('type')}: {error.get('message')}"
    return str(error)


def _cut(text: str, limit: int = CELL_CHARS) -> str:
    text = " ".join(text.split())  # one line per row
    return text if len(text) <= limit else text[:limit - 1] + "…"


def workers_table(console: Console, workers: Sequence[dict[str, Any]], now: float) -> Table:
    """``GET /workers`` rows: id, pid, alive, last heartbeat, counters, partitions, tasks."""
    table = make_table(console, "ID", "PID", "ALIVE", "LAST SEEN", "DONE", "FAILED", "RUNNING", "PARTITIONS",
                       "TASKS", right=("PID", "DONE", "FAILED", "RUNNING"), wrap=("TASKS",))
    for w in workers:
        tasks = f"{len(w.get('tasks') or [])} ({w.get('tasks_digest') or '?'})"
        differs = Text(" DIFFERS", style="bold red") if w.get("tasks_differ") else ""
        alive = Text("yes", style="green") if w.get("alive") else Text("NO", style="bold red")
        table.add_row(Text(str(w.get("id"))), str(w.get("pid")), alive, ago(now - w["last_heartbeat"]),
                      str(w.get("tasks_done", 0)), str(w.get("tasks_failed", 0)), str(w.get("in_progress", 0)),
                      ranges(w.get("partitions") or []), Text.assemble(tasks, differs))
    return table


#: ``yadtq status``'s fields in order; those here are left out when empty.
STATUS_FIELDS = ("task-id", "task", "args", "kwargs", "status", "result", "error", "attempts", "retries",
                 "max_retries", "timeout", "ordering_key", "progress", "worker", "submitted_at", "eta",
                 "next_run_at", "started_at", "finished_at")
OPTIONAL_FIELDS = ("max_retries", "timeout", "ordering_key", "progress", "eta", "next_run_at")


def _field(key: str, value: Any, now: float) -> RenderableType:
    if key == "status":
        return _status(value)
    if key == "error":
        return Text(_error(value), style="red") if value else Text("null")
    if key == "progress" and isinstance(value, dict):
        fraction = value.get("fraction")
        return Text(" ".join(part for part in (
            f"{fraction * 100:.0f}%" if isinstance(fraction, (int, float)) else None,
            value.get("message"), f"(at {clock(value['at'], now)})" if value.get("at") else None) if part))
    if (key.endswith("_at") or key == "eta") and value:
        return Text(when(value, now))
    return Text(value if isinstance(value, str) else json.dumps(value))


def status_view(console: Console, info: dict[str, Any], now: float) -> Group:
    """One ``GET /tasks/{id}`` row: its fields, one per line, then its history as a table."""
    fields = Table.grid(padding=(0, 1))
    fields.add_column(style="bold", min_width=13)
    fields.add_column()
    for key in STATUS_FIELDS:
        value = info.get(key)
        if value is None and key in OPTIONAL_FIELDS:
            continue
        fields.add_row(key, _field(key, value, now))
    parts: list[RenderableType] = [fields]
    if info.get("history"):
        parts += [Text("history", style="bold"), history_table(console, info["history"], now)]
    return Group(*parts)


def history_table(console: Console, history: Sequence[dict[str, Any]], now: float) -> Table:
    """A task's attempts: number, worker, outcome, start (local time), how long, error."""
    table = make_table(console, "ATTEMPT", "WORKER", "STATUS", "STARTED", "TOOK", "ERROR", right=("ATTEMPT", "TOOK"),
                       wrap=("ERROR",))
    for h in history:
        started, finished = h.get("started_at"), h.get("finished_at")
        took = finished - started if isinstance(started, (int, float)) and isinstance(finished, (int, float)) else None
        table.add_row(str(h.get("attempt", "-")), Text(str(h.get("worker") or "-")), _status(h.get("status")),
                      clock(started, now), duration(took), Text(_cut(_error(h.get("error")), 60), style="red"))
    return table


def summary_table(console: Console, rows: Sequence[dict[str, Any]]) -> Table:
    """Status rows as id, task, status, and the result (success) or the error."""
    table = make_table(console, "ID", "TASK", "STATUS", "RESULT / ERROR", wrap=("RESULT / ERROR",))
    for row in rows:
        status = row.get("status")
        if status == "success":
            outcome = Text(_cut(json.dumps(row.get("result"))))
        elif row.get("error"):
            outcome = Text(_cut(_error(row.get("error"))), style="red")
        else:
            outcome = Text("(not finished)", style="dim")
        table.add_row(Text(str(row.get("task-id"))), Text(str(row.get("task") or "-")), _status(status), outcome)
    return table


def dead_letters_table(console: Console, letters: Sequence[dict[str, Any]]) -> Table:
    """``GET /dead-letters`` rows: when, id, task, reason, attempts, error."""
    table = make_table(console, "WHEN", "ID", "TASK", "REASON", "ATTEMPTS", "ERROR", right=("ATTEMPTS",),
                       wrap=("ERROR",))
    for d in letters:
        attempts = str(len(d["history"])) if d.get("history") else "-"
        table.add_row(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d["at"])), Text(str(d["id"])),
                      Text(str(d.get("task") or "-")), Text(str(d["reason"])), attempts,
                      Text(_cut(str(d.get("error") or "")), style="red"))
    return table


def top_frame(console: Console, workers: Sequence[dict[str, Any]], *, url: str, now: float,
              rates: Optional[dict[str, float]] = None, lag: Optional[dict[str, Optional[int]]] = None,
              error: Optional[str] = None, live: bool = False) -> Group:
    """``yadtq top``'s view: a summary line, then one row per worker (id, alive, host and
    pid, partitions, done, failed, running, tasks/s, queued in its partitions, heartbeat
    age). ``rates``: worker id → tasks/s (none yet: ``-``); ``lag``: worker id → task
    messages not yet done in the partitions it holds; ``error``: why this frame is stale."""
    lag, rates = lag or {}, rates or {}
    alive = sum(1 for w in workers if w.get("alive"))
    total = sum(rates.values()) if rates else None
    queued = [n for n in lag.values() if n is not None]
    summary = Text.assemble(
        ("yadtq top", "bold"), f"  {url}  ", (f"{alive}/{len(workers)}", "green" if alive else "red"),
        " workers alive  ", (f"{total:.1f}" if total is not None else "-", "bold"), " tasks/s  ",
        (str(sum(int(w.get("in_progress") or 0) for w in workers)), "bold"), " running  ",
        (str(sum(queued)) if queued else "-", "bold"), " queued  ", (clock(now, now), "dim"))
    table = make_table(console, "WORKER", "ALIVE", "HOST/PID", "PARTITIONS", "DONE", "FAILED", "RUNNING",
                       "TASKS/S", "QUEUED", "HEARTBEAT",
                       right=("DONE", "FAILED", "RUNNING", "TASKS/S", "QUEUED", "HEARTBEAT"), wrap=("HOST/PID",))
    for w in workers:
        per_s, queued_here, up = rates.get(w["id"]), lag.get(w["id"]), bool(w.get("alive"))
        age = now - w["last_heartbeat"] if isinstance(w.get("last_heartbeat"), (int, float)) else None
        table.add_row(Text(str(w["id"])), Text("yes", style="green") if up else Text("NO", style="bold red"),
                      Text(f"{w.get('host')}/{w.get('pid')}"), ranges(w.get("partitions") or []),
                      str(w.get("tasks_done", 0)), str(w.get("tasks_failed", 0)), str(w.get("in_progress", 0)),
                      f"{per_s:.1f}" if per_s is not None else "-",
                      str(queued_here) if queued_here is not None else "-",
                      Text(duration(age, coarse=True) if age is not None else "-", style="" if up else "red"),
                      style="" if up else "dim")
    parts: list[RenderableType] = [summary, table]
    if error:
        parts.append(Text(f"yadtq: {error}", style="bold red"))
    if live:
        parts.append(Text("Ctrl-C quits", style="dim"))
    return Group(*parts)
