"""The CLI's tables (yadtq_app.cli_views): plain and unfolded when piped, coloured on a terminal."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from rich.console import Console

from yadtq_app import cli_views as views

ROOT = Path(__file__).resolve().parents[2]
ESC = "\x1b"
NOW = 1_780_000_000.0
LONG_ID = "w-" + "x" * 200

WORKERS = [
    {"id": "w0-abc", "host": "box", "pid": 101, "url": "http://127.0.0.1:1", "alive": True, "last_heartbeat": NOW - 0.4,
     "tasks_done": 12, "tasks_failed": 3, "in_progress": 2, "partitions": [0, 1, 2, 3, 7], "tasks": ["add", "divide"],
     "tasks_digest": "d1", "tasks_differ": False},
    {"id": LONG_ID, "host": "box", "pid": 102, "url": "http://127.0.0.1:2", "alive": False, "last_heartbeat": NOW - 95,
     "tasks_done": 0, "tasks_failed": 0, "in_progress": 0, "partitions": [], "tasks": ["add"], "tasks_digest": "d2",
     "tasks_differ": False},
]
DIVIDE_ERROR = {"type": "ZeroDivisionError", "message": "division by zero"}
TASK = {"task-id": "t-[bold]1", "task": "divide", "args": [1, 0], "kwargs": {}, "status": "failed", "result": None,
        "error": DIVIDE_ERROR, "attempts": 2, "retries": 1, "worker": "w0-abc", "submitted_at": NOW - 70,
        "started_at": NOW - 61, "finished_at": NOW - 60.5,
        "history": [{"attempt": 1, "worker": "w0-abc", "status": "retrying", "started_at": NOW - 64,
                     "finished_at": NOW - 63.988, "error": DIVIDE_ERROR},
                    {"attempt": 2, "worker": "w0-abc", "status": "failed", "started_at": NOW - 61,
                     "finished_at": NOW - 60.5, "error": DIVIDE_ERROR}]}


def piped() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return views.make_console(file=buf), buf


def terminal() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, color_system="standard", width=100, highlight=False), buf


def test_piped_tables_are_plain_columns_one_line_per_row() -> None:
    out, buf = piped()
    views.show(out, views.workers_table(out, WORKERS, NOW))
    text = buf.getvalue()
    assert ESC not in text and "─" not in text, text
    lines = text.splitlines()
    assert lines[0].split() == ["ID", "PID", "ALIVE", "LAST", "SEEN", "DONE", "FAILED", "RUNNING", "PARTITIONS",
                                "TASKS"]
    assert len(lines) == 3, text  # the 200-character id folds nothing
    assert lines[1].split()[:8] == ["w0-abc", "101", "yes", "0.4", "s", "ago", "12", "3"]
    assert "0-3,7" in lines[1] and lines[2].startswith(LONG_ID) and " NO " in lines[2]
    assert all(line == line.rstrip() for line in lines)


def test_a_terminal_gets_colours_and_a_header_line() -> None:
    """The control case for the tests that find no escape codes: the same table on a terminal has them."""
    out, buf = terminal()
    views.show(out, views.workers_table(out, WORKERS[:1], NOW))
    text = buf.getvalue()
    assert ESC + "[" in text and "─" in text


def test_a_narrow_terminal_folds_only_the_text_columns() -> None:
    import re

    buf = io.StringIO()
    out = Console(file=buf, force_terminal=True, width=72, highlight=False)
    views.show(out, views.workers_table(out, WORKERS[:1], NOW))
    lines = re.sub(r"\x1b\[[0-9;]*m", "", buf.getvalue()).splitlines()
    assert lines[0].split() == ["ID", "PID", "ALIVE", "LAST", "SEEN", "DONE", "FAILED", "RUNNING", "PARTITIONS",
                                "TASKS"], lines
    assert lines[2].split()[:9] == ["w0-abc", "101", "yes", "0.4", "s", "ago", "12", "3", "2"], lines
    assert all(len(line) <= 72 for line in lines)


def test_data_is_never_read_as_markup() -> None:
    out, buf = piped()
    views.show(out, views.summary_table(out, [TASK]))
    assert "t-[bold]1" in buf.getvalue()


def test_status_shows_fields_then_history_with_human_times() -> None:
    out, buf = piped()
    views.show(out, views.status_view(out, TASK, NOW))
    lines = buf.getvalue().splitlines()
    assert lines[0].split() == ["task-id", "t-[bold]1"]
    assert "status        failed" in lines
    assert "error         ZeroDivisionError: division by zero" in lines
    assert any(line.startswith("started_at") and line.endswith("(1 min ago)") for line in lines), lines
    history = lines[lines.index("history") + 1:]
    assert history[0].split() == ["ATTEMPT", "WORKER", "STATUS", "STARTED", "TOOK", "ERROR"]
    assert len(history) == 3
    started = time.strftime("%H:%M:%S", time.localtime(NOW - 64))
    assert history[1].split()[:6] == ["1", "w0-abc", "retrying", started, "12", "ms"], history
    assert history[2].split()[4:6] == ["500", "ms"] and "ZeroDivisionError" in history[2]


def test_summary_shows_result_or_error() -> None:
    out, buf = piped()
    rows = [{"task-id": "a", "task": "add", "status": "success", "result": {"sum": 3}}, TASK,
            {"task-id": "c", "task": "sleep", "status": "processing"}]
    views.show(out, views.summary_table(out, rows))
    lines = buf.getvalue().splitlines()
    assert lines[0].split() == ["ID", "TASK", "STATUS", "RESULT", "/", "ERROR"]
    assert lines[1].split() == ["a", "add", "success", '{"sum":', "3}"]
    assert lines[2].split()[:3] == ["t-[bold]1", "divide", "failed"] and "ZeroDivisionError" in lines[2]
    assert lines[3].split() == ["c", "sleep", "processing", "(not", "finished)"]


def test_top_frame() -> None:
    out, buf = piped()
    views.show(out, views.top_frame(out, WORKERS, url="http://h:1", now=NOW, rates={"w0-abc": 2.5},
                                    lag={"w0-abc": 4}))
    lines = buf.getvalue().splitlines()
    assert "1/2 workers alive" in lines[0] and "2.5 tasks/s" in lines[0] and "2 running" in lines[0]
    assert "4 queued" in lines[0]
    assert lines[1].split() == ["WORKER", "ALIVE", "HOST/PID", "PARTITIONS", "DONE", "FAILED", "RUNNING", "TASKS/S",
                                "QUEUED", "HEARTBEAT"]
    assert lines[2].split() == ["w0-abc", "yes", "box/101", "0-3,7", "12", "3", "2", "2.5", "4", "0.4", "s"]
    assert lines[3].split() == [LONG_ID, "NO", "box/102", "-", "0", "0", "0", "-", "-", "1", "min"]
    assert "Ctrl-C" not in buf.getvalue()  # only a terminal can press it


@pytest.mark.parametrize("seconds, text", [(0.012, "12 ms"), (1.254, "1.25 s"), (42, "42 s"), (62, "1 min 2 s"),
                                           (3 * 3600 + 120, "3 h 2 min"), (2 * 86400 + 3600, "2 d 1 h")])
def test_duration(seconds: float, text: str) -> None:
    assert views.duration(seconds) == text


@pytest.mark.parametrize("seconds, text", [(0.4, "0.4 s ago"), (42, "42 s ago"), (130, "2 min ago"),
                                           (7200, "2 h ago"), (None, "-")])
def test_ago(seconds: Any, text: str) -> None:
    assert views.ago(seconds) == text


@pytest.mark.parametrize("numbers, text", [([], "-"), ([3], "3"), ([0, 1, 2, 3, 7], "0-3,7"),
                                           ([5, 1, 2, 9, 10], "1-2,5,9-10")])
def test_ranges(numbers: list[int], text: str) -> None:
    assert views.ranges(numbers) == text


class _Canned(BaseHTTPRequestHandler):
    """A stand-in worker that answers ``GET /workers`` and ``GET /tasks/{id}`` with fixed rows."""

    def do_GET(self) -> None:
        body: Any = {"workers": WORKERS} if self.path == "/workers" else TASK
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def canned_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _cli(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE")}
    return subprocess.run([sys.executable, "-m", "yadtq_app.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**clean, "COLUMNS": "40", **env})


@pytest.mark.parametrize("command", [["workers"], ["status", "t1"], ["top", "--once"]])
def test_piped_commands_print_no_escape_codes(canned_url: str, command: list[str]) -> None:
    r = _cli([*command, "--url", canned_url])
    assert r.returncode == 0, r.stderr
    assert ESC not in r.stdout and "─" not in r.stdout and r.stderr == "", r.stdout + r.stderr
    assert "w0-abc" in r.stdout
    assert any(line.startswith(LONG_ID) for line in r.stdout.splitlines()) or command[0] == "status"
    # The control case: told it is a terminal, the same command colours its output.
    forced = _cli([*command, "--url", canned_url], FORCE_COLOR="1")
    assert forced.returncode == 0 and ESC + "[" in forced.stdout, forced.stdout + forced.stderr


@pytest.mark.parametrize("command", [["workers"], ["status", "t1"]])
def test_json_is_the_answer_as_it_came(canned_url: str, command: list[str]) -> None:
    r = _cli([*command, "--url", canned_url, "--json"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == (WORKERS if command == ["workers"] else TASK)
    assert r.stdout == json.dumps(json.loads(r.stdout), indent=2) + "\n"


def test_worker_rates_from_successive_heartbeats() -> None:
    from yadtq_app.cli_watch import WorkerRates

    def row(worker: str, at: float, done: int, failed: int = 0, alive: bool = True) -> dict[str, Any]:
        return {"id": worker, "last_heartbeat": at, "tasks_done": done, "tasks_failed": failed, "alive": alive}

    rates = WorkerRates()
    assert rates.update([row("a", 100, 10, 2), row("b", 100.5, 0)]) == {}  # one heartbeat each: no rate yet
    assert rates.update([row("a", 102, 16, 4), row("b", 100.5, 0), row("c", 101, 5)]) == {"a": 4.0}
    # The same heartbeats again (top asks more often than workers beat): the same rates.
    assert rates.update([row("a", 102, 16, 4), row("b", 101.5, 1), row("c", 101, 5)]) == {"a": 4.0, "b": 1.0}
    # a restarted (its counters start over); c beat again; b stopped beating.
    assert rates.update([row("a", 103, 1), row("b", 101.5, 1, alive=False), row("c", 103, 9)]) == \
        {"b": 0.0, "c": 2.0}
    assert rates.update([row("a", 104, 3)]) == {"a": 2.0}


def test_piped_top_prints_a_frame_per_interval_until_ctrl_c(canned_url: str, tmp_path: Path) -> None:
    import signal

    from tests.support.wait import wait_for

    out_path = tmp_path / "top.txt"
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE")}
    with open(out_path, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "yadtq_app.cli", "top", "--interval", "0.2", "--url",
                                 canned_url], cwd=ROOT, stdout=out, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for(lambda: out_path.read_text().count("workers alive") >= 2, timeout=30, message="two frames")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert proc.stderr is not None and proc.stderr.read() == ""  # no traceback
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out_path.read_text()
    assert ESC not in text and "Ctrl-C" not in text
    frames = [f for f in text.split("\n\n") if f.strip()]
    assert len(frames) >= 2 and all(f.lstrip().startswith("yadtq top") for f in frames), text
