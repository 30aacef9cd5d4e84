"""Questions to a local Kafka cluster: its brokers, a topic's partitions, its active controller.

Blocking functions for tests and tools (they run their own event loop); each is bounded
by a ``timeout`` and raises :class:`~yadtq_app.errors.BrokerError` (or the timeout) when
the cluster does not answer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import subprocess
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

from .errors import BrokerError
from .kafka_local_nodes import TOOL_OPTIONS, classpath

__all__ = ["run_async", "ask_admin", "registered_brokers", "describe_partitions", "quorum_leader"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def run_async(make: Callable[[], Awaitable[T]], timeout: float) -> T:
    """Run a coroutine to completion from sync code, even if the caller's thread has a loop."""
    async def bounded() -> T:
        return await asyncio.wait_for(make(), timeout)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(bounded())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, bounded()).result()


def ask_admin(bootstrap: Callable[[], str], ask: Callable[[Any], Awaitable[T]], timeout: float) -> T:
    """``ask(admin)`` with an admin client on ``bootstrap()`` (asked anew each try); asked
    again while it fails with a Kafka error (a node just killed can still be in the client's
    metadata), until ``timeout``."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    async def attempts() -> T:
        while True:
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(), request_timeout_ms=3000)
            try:
                await admin.start()
                return await ask(admin)
            except KafkaError as exc:
                logger.debug("Kafka admin request failed, asking again: %r", exc)
            finally:
                await admin.close()
            await asyncio.sleep(0.2)

    return run_async(attempts, timeout)


def registered_brokers(bootstrap: Callable[[], str], timeout: float) -> list[int]:
    """Node ids of the brokers the cluster's metadata lists now (registered and unfenced)."""
    async def ask(admin: Any) -> list[int]:
        cluster = await admin.describe_cluster()
        return sorted(b["node_id"] for b in cluster["brokers"])

    return ask_admin(bootstrap, ask, timeout)


def describe_partitions(bootstrap: Callable[[], str], topic: str, timeout: float) -> list[dict[str, Any]]:
    """The partitions of ``topic`` as the admin client describes them (``partition``,
    ``leader``, ``isr``...); :class:`BrokerError` if the topic cannot be described."""
    async def ask(admin: Any) -> list[dict[str, Any]]:
        [described] = await admin.describe_topics([topic])
        if described["error_code"]:
            raise BrokerError(f"cannot describe topic {topic!r}: error code {described['error_code']}")
        return list(described["partitions"])

    return ask_admin(bootstrap, ask, timeout)


def quorum_leader(voters: str, *, lib_dir: Path, config_path: Path, timeout: float) -> int:
    """Node id of the KRaft quorum's leader, as ``MetadataQuorumCommand`` run against the
    controllers ``voters`` (``host:port,...``) reports it; ``config_path`` is written with
    the tool's client settings. :class:`BrokerError` if none is known within ``timeout``."""
    # The tool's admin client retries for default.api.timeout.ms (60 s) while there is
    # no leader: a bounded answer is more use to a caller that polls.
    api_ms = int(max(1.0, timeout - 5.0) * 1000)
    config_path.write_text(f"default.api.timeout.ms={api_ms}\nrequest.timeout.ms={min(api_ms, 3000)}\n")
    cmd = ["java", *TOOL_OPTIONS, "-cp", classpath(lib_dir), "org.apache.kafka.tools.MetadataQuorumCommand",
           "--bootstrap-controller", voters, "--command-config", str(config_path), "describe", "--status"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(f"the quorum status took longer than {timeout:g} s") from exc
    found = re.search(r"^LeaderId:\s+(-?\d+)", out.stdout, re.MULTILINE)
    if out.returncode != 0 or found is None or int(found.group(1)) < 0:
        raise BrokerError(f"no active controller known (exit {out.returncode}): "
                          f"{(out.stdout + out.stderr).strip()[-800:]}")
    return int(found.group(1))
