"""``yadtq wait``, ``yadtq top`` and the progress bars, run as commands against real workers,
piped and in a pseudo-terminal."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import uuid
from pathlib import Path
from typing import Any, Optional

import pytest

from tests.support.cluster import ROOT, stop_process
from tests.support.wait import wait_for
from yadtq_app import Client

pytestmark = pytest.mark.integration

YADTQ = [sys.executable, "-m", "yadtq_app.cli"]
ESC = "\x1b"


def run(args: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE")}
    return subprocess.run(YADTQ + args, capture_output=True, text=True, timeout=120, cwd=str(ROOT), env=env, **kw)


class Terminal:
    """A command whose standard error (and output, unless ``stdout`` is given) is a
    pseudo-terminal of 150×40; everything it writes there is in :attr:`text`."""

    def __init__(self, args: list[str], stdout: Optional[Any] = None) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 150, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE")}
        self.proc = subprocess.Popen(YADTQ + args, stdin=slave, stdout=stdout if stdout is not None else slave,
                                     stderr=slave, cwd=str(ROOT), env=dict(env, TERM="xterm-256color"),
                                     start_new_session=True)
        os.close(slave)
        self.master = master
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the command closed its end
                return
            if not data:
                return
            self._chunks.append(data)

    @property
    def text(self) -> str:
        return b"".join(self._chunks).decode(errors="replace")

    def finish(self, timeout: float = 60) -> int:
        """Its exit status, once everything it wrote is read."""
        code = self.proc.wait(timeout)
        self._reader.join(10)
        os.close(self.master)
        return code


def test_wait_sums_up_and_exits_by_outcome(shared_cluster: Any) -> None:
    url = shared_cluster.workers[0].url
    client = Client(url)
    tag = uuid.uuid4().hex[:8]
    add = client.submit("add", 2, 3, task_id=f"wait-add-{tag}").id
    divide = client.submit("divide", 1, 0, task_id=f"wait-div-{tag}").id
    nap = client.submit("sleep", 0.5, task_id=f"wait-nap-{tag}").id

    r = run(["wait", add, divide, nap, "--url", url])
    assert r.returncode == 1, r.stdout + r.stderr  # divide failed
    assert r.stderr == "" and ESC not in r.stdout  # piped: no bar, no colours
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ID", "TASK", "STATUS", "RESULT", "/", "ERROR"], r.stdout
    assert lines[1].split() == [add, "add", "success", "5"]
    assert lines[2].split()[:3] == [divide, "divide", "failed"] and "ZeroDivisionError" in lines[2]
    assert lines[3].split() == [nap, "sleep", "success", "0.5"] and len(lines) == 4

    r = run(["wait", nap, add, "--url", url])
    assert r.returncode == 0 and [line.split()[0] for line in r.stdout.splitlines()[1:]] == [nap, add], r.stderr

    r = run(["wait", add, divide, "--json", "--url", url])
    assert r.returncode == 1
    assert [(row["task-id"], row["status"], row["result"]) for row in json.loads(r.stdout)] == \
        [(add, "success", 5), (divide, "failed", None)]

    later = client.send_task("add", [1, 1], countdown=60, task_id=f"wait-later-{tag}").id
    client.cancel(later)
    r = run(["wait", later, "--url", url])
    assert r.returncode == 1 and "cancelled" in r.stdout.splitlines()[1], r.stdout + r.stderr


def test_wait_timeout_and_unknown_ids(shared_cluster: Any) -> None:
    url = shared_cluster.workers[0].url
    slow = Client(url).submit("sleep", 3, task_id=f"wait-slow-{uuid.uuid4().hex[:8]}").id
    r = run(["wait", slow, "--timeout", "0.3", "--url", url])
    assert r.returncode == 1, r.stderr
    assert r.stdout.splitlines()[1].split()[:2] == [slow, "sleep"] and "(not finished)" in r.stdout
    assert r.stderr.startswith("yadtq: 1 of 1 task(s) not finished after 0.3 s") and len(r.stderr.splitlines()) == 1

    r = run(["wait", slow, "no-such-task", "--url", url])
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == "yadtq: unknown task id: no-such-task (never submitted, or expired)\n"
    assert run(["wait", "--url", url]).returncode == 2  # no ids: usage
    assert run(["wait", slow, "--timeout", "0", "--url", url]).returncode == 2


@pytest.mark.embedded_only  # the contract / terminal output does not depend on the broker
def test_wait_in_a_terminal_shows_progress_then_the_table(shared_cluster: Any) -> None:
    url = shared_cluster.workers[0].url
    tag = uuid.uuid4().hex[:8]
    ids = [Client(url).submit("sleep", 0.3 * i, task_id=f"wait-tty-{tag}-{i}").id for i in range(3)]
    term = Terminal(["wait", *ids, "--url", url])
    assert term.finish() == 0, term.text
    assert "waiting" in term.text and "/3" in term.text and ESC + "[" in term.text  # the bar, drawn
    assert "─" in term.text and all(i in term.text for i in ids)  # the table, for a terminal
    assert "Traceback" not in term.text


def test_top_once_shows_every_worker(shared_cluster: Any) -> None:
    url = shared_cluster.workers[0].url
    r = run(["top", "--once", "--url", url])
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert ESC not in r.stdout
    lines = r.stdout.splitlines()
    assert "2/2 workers alive" in lines[0], r.stdout
    assert lines[1].split()[:4] == ["WORKER", "ALIVE", "HOST/PID", "PARTITIONS"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    for w in shared_cluster.workers:
        assert rows[w.worker_id][1] == "yes" and rows[w.worker_id][2].endswith(f"/{w.pid}"), r.stdout
    held = sorted(int(p) for row in rows.values() for part in row[3].split(",")
                  for p in _expand(part))
    assert held == list(range(shared_cluster.partitions))  # every partition, once


def _expand(part: str) -> list[int]:
    if part == "-":
        return []
    first, _, last = part.partition("-")
    return list(range(int(first), int(last or first) + 1))


@pytest.mark.embedded_only  # the contract / terminal output does not depend on the broker
def test_top_redraws_in_a_terminal_and_quits_on_ctrl_c(shared_cluster: Any) -> None:
    url = shared_cluster.workers[0].url
    term = Terminal(["top", "--interval", "0.2", "--url", url])
    try:
        def redrawn() -> bool:
            # The summary line ends in the time of its frame: two different times, two frames.
            return len(set(re.findall(r"queued\s+(?:\x1b\[[0-9;]*m)*(\d\d:\d\d:\d\d)", term.text))) >= 2

        wait_for(redrawn, timeout=30, message="top to draw two frames")
        text = term.text
        assert all(w.worker_id in text for w in shared_cluster.workers) and "Ctrl-C quits" in text
        assert ESC + "[" in text  # colours and cursor movement: a terminal
        term.proc.send_signal(signal.SIGINT)
        assert term.finish(30) == 0, term.text
        assert "Traceback" not in term.text and "KeyboardInterrupt" not in term.text
    finally:
        stop_process(term.proc, signal.SIGKILL)


@pytest.mark.embedded_only  # the contract / terminal output does not depend on the broker
def test_submit_file_progress_only_on_a_terminal(shared_cluster: Any, tmp_path: Path) -> None:
    url = shared_cluster.workers[0].url
    tag = uuid.uuid4().hex[:8]
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps({"task-id": f"bar-{tag}-{i}", "task": "add", "args": [i, 1]}) + "\n"
                            for i in range(50)))  # few: thousands stall the shared workers of a busy machine
    ids_path = tmp_path / "ids.txt"
    with open(ids_path, "w") as ids:
        term = Terminal(["submit", "--file", str(path), "--url", url], stdout=ids)  # only stderr a terminal
        assert term.finish(120) == 0, term.text
    assert "submitting" in term.text and "50/50" in term.text and ESC + "[" in term.text, term.text
    assert ids_path.read_text().split() == [f"bar-{tag}-{i}" for i in range(50)]  # only ids, no bar

    again = path.read_text().replace(f"bar-{tag}", f"bar2-{tag}")
    r = run(["submit", "--file", "-", "--url", url], input=again)
    assert r.returncode == 0 and r.stderr == "", r.stderr  # piped: nothing extra
    assert len(r.stdout.split()) == 50 and ESC not in r.stdout
