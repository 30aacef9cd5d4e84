"""The HTTP server's own limits, against a real worker: idle and slow connections are
closed, compressed and oversized bodies refused without blocking the worker, and every
error is JSON."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import zlib
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests.support.cluster import Cluster, WorkerProcess
from yadtq_app import Client

pytestmark = pytest.mark.integration

IDLE = 2.0  # YADTQ_HTTP_IDLE_TIMEOUT of the worker below
READ = 2.0  # YADTQ_HTTP_READ_TIMEOUT
MAX_BYTES = 100_000  # YADTQ_MAX_MESSAGE_BYTES
#: aiohttp's lingering_time: after answering a request whose body it did not read, the
#: server reads and drops what still comes for up to this long, then closes.
LINGER = 10.0


@pytest.fixture(scope="module")
def worker(broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """One worker with short HTTP timeouts, for this module's tests."""
    cluster = Cluster(broker.url, Path(tmp_path_factory.mktemp("http")) / "cluster", partitions=2,
                      extra_env={"YADTQ_HTTP_IDLE_TIMEOUT": str(IDLE), "YADTQ_HTTP_READ_TIMEOUT": str(READ),
                                 "YADTQ_MAX_MESSAGE_BYTES": str(MAX_BYTES)})
    try:
        cluster.start(1)
        yield cluster.workers[0]
    finally:
        cluster.stop()


def exchange(port: int, data: bytes, *, timeout: float) -> tuple[float, float, bytes]:
    """Send ``data`` on a new connection and read until the worker closes it, for at
    most ``timeout`` s: (seconds until the first answer byte, until closed; ``inf``
    for what did not happen; what came back)."""
    t0 = time.monotonic()
    answered = float("inf")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        got = b""
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                return answered, time.monotonic() - t0, got
            if not chunk:
                return answered, time.monotonic() - t0, got
            if not got:
                answered = time.monotonic() - t0
            got += chunk
        return answered, float("inf"), got


def status_and_json(response: bytes) -> tuple[int, Any]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"application/json" in head.lower(), response[:400]
    return int(head.split()[1]), json.loads(body)


def test_idle_and_slow_connections_are_closed_within_the_idle_timeout(worker: WorkerProcess) -> None:
    async def run() -> list[float]:
        async def idle() -> float:
            t0 = time.monotonic()
            reader, writer = await asyncio.open_connection("127.0.0.1", worker.web_port)
            try:
                await asyncio.wait_for(reader.read(), IDLE + 3)
                return time.monotonic() - t0
            except asyncio.TimeoutError:
                return float("inf")
            finally:
                writer.close()

        async def trickle() -> float:
            """Request headers, a byte every 0.2 s, never finished."""
            t0 = time.monotonic()
            reader, writer = await asyncio.open_connection("127.0.0.1", worker.web_port)
            try:
                for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
                    if reader.at_eof() or writer.is_closing():
                        return time.monotonic() - t0  # closed by the server (seen between two reads)
                    writer.write(bytes([byte]))
                    try:
                        if await asyncio.wait_for(reader.read(1), 0.2) == b"":
                            return time.monotonic() - t0
                    except asyncio.TimeoutError:
                        pass
                    except ConnectionError:
                        return time.monotonic() - t0
                    if time.monotonic() - t0 > IDLE + 3:
                        return float("inf")
                return float("inf")
            finally:
                writer.close()

        return list(await asyncio.gather(*[idle() for _ in range(200)], *[trickle() for _ in range(5)]))

    closed_after = asyncio.run(run())
    assert max(closed_after) < IDLE + 1.5, sorted(closed_after)[-5:]
    assert httpx.get(worker.url + "/health", timeout=5).status_code == 200


def test_a_slow_request_body_is_a_408(worker: WorkerProcess) -> None:
    head = b"POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    answered, closed, response = exchange(worker.web_port, head + b'{"task": "', timeout=READ + LINGER + 5)
    assert answered < READ + 1.5 and closed < READ + LINGER + 1.5, (answered, closed, response[:300])
    status, body = status_and_json(response)
    assert status == 408 and body["reason"] == "slow-body"


def test_a_long_poll_outlives_the_idle_timeout(worker: WorkerProcess) -> None:
    handle = Client(worker.url).submit("sleep", IDLE + 1.5)
    t0 = time.monotonic()
    r = httpx.get(f"{worker.url}/tasks/{handle.id}", params={"wait": "20"}, timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "success", r.text
    assert time.monotonic() - t0 > IDLE


def test_a_body_over_the_cap_is_refused_before_it_is_all_sent(worker: WorkerProcess) -> None:
    head = (b"POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50000000\r\n\r\n")
    answered, _, response = exchange(worker.web_port, head + b"[" * 10_000, timeout=5)
    assert answered < 2, (answered, response[:300])
    status, body = status_and_json(response)
    assert status == 413 and body["reason"] == "too-large"
    # Chunked, with no length to judge by: refused once the cap is passed while reading.
    chunk = b"[" * 50_000
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3))
    head = b"POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    answered, _, response = exchange(worker.web_port, head + chunked, timeout=5)
    assert answered < 2, (answered, response[:300])
    status, body = status_and_json(response)
    assert status == 413 and body["reason"] == "too-large"


def deflate_bomb(inflated: int) -> bytes:
    """zlib-deflated zeros that inflate to ``inflated`` bytes (about a thousandth of it)."""
    z = zlib.compressobj(9)
    block = bytes(1 << 20)
    return b"".join(z.compress(block) for _ in range(inflated >> 20)) + z.flush()


def test_compressed_bodies_are_refused_and_the_worker_keeps_answering(worker: WorkerProcess) -> None:
    bomb = deflate_bomb(1 << 30)
    answers: list[httpx.Response] = []
    latencies: list[float] = []
    done = threading.Event()

    def send() -> None:
        answers.append(httpx.post(worker.url + "/tasks", content=bomb, timeout=60,
                                  headers={"Content-Encoding": "deflate", "Content-Type": "application/json"}))

    def probe() -> None:
        while not done.is_set():
            t0 = time.monotonic()
            httpx.get(worker.url + "/health", timeout=30)
            latencies.append(time.monotonic() - t0)
            done.wait(0.05)

    prober = threading.Thread(target=probe)
    prober.start()
    senders = [threading.Thread(target=send) for _ in range(6)]
    for t in senders:
        t.start()
    for t in senders:
        t.join(60)
    done.set()
    prober.join(30)
    assert [a.status_code for a in answers] == [415] * 6, [(a.status_code, a.text[:100]) for a in answers]
    assert all(a.json()["reason"] == "compressed" for a in answers)
    assert max(latencies) < 1.0, sorted(latencies)[-5:]
    small = httpx.post(worker.url + "/tasks", content=zlib.compress(b'{"task": "add", "args": [1, 2]}'),
                       headers={"Content-Encoding": "deflate"}, timeout=10)
    assert small.status_code == 415 and small.json()["reason"] == "compressed"


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/no/such/page", 404),
    ("DELETE", "/tasks", 405),
    ("PUT", "/tasks/x", 405),
])
def test_errors_outside_the_views_are_json_too(worker: WorkerProcess, method: str, path: str, status: int) -> None:
    r = httpx.request(method, worker.url + path, timeout=10)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), (r.headers["content-type"], r.text)
    assert r.json()["error"]


def test_a_client_that_hangs_up_mid_body_is_not_logged_as_a_failure(worker: WorkerProcess) -> None:
    start = len(worker.log_text())
    head = b"POST /tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", worker.web_port), timeout=5) as s:
            s.sendall(head + b'{"task": "')
            time.sleep(0.2)  # the worker is reading the body when the client goes
    assert httpx.get(worker.url + "/health", timeout=5).status_code == 200
    assert Client(worker.url).submit("add", 1, 2).result(timeout=30) == 3
    logged = worker.log_text()[start:]
    assert "Traceback" not in logged and "failed" not in logged, logged[-2000:]
