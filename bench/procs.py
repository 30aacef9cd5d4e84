"""Processes the comparison starts for the peers: Redis and their workers.

Each runs under ``timeout`` (so none outlives the benchmark even if it is killed), in
its own session, and is stopped by its PID: SIGTERM to the ``timeout`` process, which
passes it on, then SIGKILL to that process group if it does not exit in time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, Optional, Sequence

__all__ = ["BoundedProcess", "RedisServer", "BenchError", "cpu_seconds"]

logger = logging.getLogger(__name__)


class BenchError(Exception):
    """Something the benchmark needs did not start or did not answer."""


def cpu_seconds(pid: int) -> float:
    """CPU time process ``pid`` has used so far (user + system, from ``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BoundedProcess:
    """``timeout LIFETIME cmd...`` in its own session, logging to a file."""

    def __init__(self, name: str, cmd: Sequence[str], *, lifetime: float, log_path: Path,
                 env: Optional[dict[str, str]] = None, cwd: Optional[Path] = None) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.lifetime = max(1, int(lifetime))
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self._log: Optional[IO[bytes]] = None

    def start(self) -> "BoundedProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        full = ["timeout", "--kill-after=10", str(self.lifetime), *self.cmd]
        self.proc = subprocess.Popen(full, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env, cwd=str(self.cwd) if self.cwd else None,
                                     start_new_session=True)
        logger.info("started %s (pid %s, at most %d s): %s", self.name, self.proc.pid, self.lifetime,
                    " ".join(self.cmd))
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if not self.alive:
            raise BenchError(f"{self.name} exited (code {self.proc.returncode if self.proc else '?'}); "
                             f"log {self.log_path}:\n{self.tail()}")

    def command_pid(self, timeout: float = 10.0) -> int:
        """The command's own pid: the child of the ``timeout`` process that runs it."""
        assert self.proc is not None
        pid = self.proc.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            if children:
                return int(children[0])
            time.sleep(0.01)
        raise BenchError(f"{self.name} did not start in {timeout:g} s")

    def stop(self, timeout: float = 20.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # timeout passes it on to the command
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s (pid %s) did not stop in %g s: SIGKILL to its process group",
                               self.name, proc.pid, timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # the group this process leads
                proc.wait(10)
            logger.info("stopped %s (pid %s)", self.name, proc.pid)
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


class RedisServer:
    """Debian's ``redis-server`` on a loopback port, no persistence, for the peers."""

    def __init__(self, port: int, *, lifetime: float, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        binary = shutil.which("redis-server")
        if binary is None:
            raise BenchError("redis-server is not installed: `apt-get install -y redis-server` (make bench does it)")
        cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--daemonize", "no", "--dir", str(workdir), "--loglevel", "warning"]
        self.process = BoundedProcess("redis-server", cmd, lifetime=lifetime, log_path=workdir / "redis.log")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> "RedisServer":
        import redis

        self.process.start()
        deadline = time.monotonic() + timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        try:
            while True:
                self.process.check_alive()
                try:
                    if client.ping():
                        break
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    raise BenchError(f"redis-server did not answer on port {self.port} in {timeout:g} s")
                time.sleep(0.05)
        finally:
            client.close()
        return self

    def flush(self) -> None:
        """Empty every database: each run of a peer starts from a clean Redis."""
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            client.flushall()
        finally:
            client.close()

    def version(self) -> str:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            return str(client.info("server").get("redis_version", "?"))
        finally:
            client.close()

    def stop(self) -> None:
        self.process.stop()
