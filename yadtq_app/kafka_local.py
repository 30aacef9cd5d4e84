"""Apache Kafka on this machine: a 1- or 3-node KRaft cluster run from Maven Central's jars.

For development (``yadtq kafka``, ``make kafka``) and the tests; production runs Kafka on
its own hosts. Each node is one JVM, broker and controller at once, on loopback ports,
with its data, its ``server.properties`` and its log under one folder. The jars come from
``make kafka-jars`` (``.kafka/lib``). This module starts, awaits and stops the nodes;
:mod:`.kafka_local_nodes` plans them (ports, configs, storage) and
:mod:`.kafka_local_admin` asks the running cluster. How it works and what was learnt
running it: ``docs/kafka_local.md`` and ``docs/brokers.md``.

::

    with LocalKafka(nodes=3, data_dir="/tmp/k3") as kafka:
        print(kafka.url)   # kafka://127.0.0.1:41011;127.0.0.1:41013;127.0.0.1:41015
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Mapping, Optional, Sequence

from .broker import kafka_api_versions_ok, port_is_free
from .errors import BrokerError
from .kafka_local_admin import describe_partitions, quorum_leader, registered_brokers
from .kafka_local_nodes import (
    DEFAULT_LIB_DIR,
    KafkaNode,
    classpath,
    format_storage,
    load_or_plan,
    missing_requirements,
    node_config,
    save_state,
)

__all__ = ["LocalKafka", "JVM_OPTIONS", "LOG4J2"]

logger = logging.getLogger(__name__)

#: A small heap and a quick start; one core's worth of GC and JIT threads.
JVM_OPTIONS = ("-Xmx384m", "-Xms128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:CICompilerCount=1",
               "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true")

LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
# Every config object logs all its values at INFO: hundreds of lines per start.
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = warn
logger.request.name = kafka.request.logger
logger.request.level = warn
"""


class LocalKafka:
    """Start, await and stop an Apache Kafka cluster of ``nodes`` KRaft nodes on loopback.

    ``data_dir`` keeps every node's data, config and log; a second start on the same
    folder restarts the same cluster (same id, same ports). ``port`` is the first node's
    client port (the others follow it); free ports when ``None``. ``settings`` are
    ``server.properties`` entries put over the built-in ones (tests pass quick group
    settings here). ``max_lifetime`` (s) bounds every JVM: it is killed after that long
    whatever happens to its caller.
    """

    def __init__(self, nodes: int = 1, *, data_dir: str | os.PathLike[str], host: str = "127.0.0.1",
                 port: Optional[int] = None, settings: Optional[Mapping[str, object]] = None,
                 lib_dir: Optional[str | os.PathLike[str]] = None, jvm_options: Sequence[str] = JVM_OPTIONS,
                 startup_timeout: float = 120.0, stop_timeout: float = 30.0,
                 max_lifetime: Optional[float] = None) -> None:
        if nodes < 1:
            raise BrokerError("a Kafka cluster needs at least one node")
        self.n = nodes
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.settings = {k: str(v) for k, v in (settings or {}).items()}
        self.lib_dir = Path(lib_dir) if lib_dir is not None else DEFAULT_LIB_DIR
        self.jvm_options = tuple(jvm_options)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.max_lifetime = max_lifetime
        self.cluster_id, ports, controller_ports = load_or_plan(self.data_dir, host, nodes, port)
        self.nodes = [KafkaNode(i + 1, ports[i], controller_ports[i], self.data_dir / f"node-{i + 1}")
                      for i in range(nodes)]

    # -- addresses ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The broker URL yadtq settings take (``YADTQ_BROKER_URL``)."""
        return "kafka://" + ";".join(f"{self.host}:{n.port}" for n in self.nodes)

    @property
    def bootstrap(self) -> str:
        """``host:port,host:port`` as Kafka clients take it."""
        return ",".join(f"{self.host}:{n.port}" for n in self.nodes)

    @property
    def pids(self) -> list[Optional[int]]:
        """The JVM process id of each node (``None`` for a node not running)."""
        return [self._jvm_pid(n) if n.running else None for n in self.nodes]

    def node_ids(self) -> list[int]:
        """KRaft node ids, in node order (node ``i`` has id ``i + 1``)."""
        return [n.node_id for n in self.nodes]

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> "LocalKafka":
        """Start every node; return once each answers and all are registered brokers."""
        problem = missing_requirements(self.lib_dir)
        if problem:
            raise BrokerError(problem)
        self._prepare()
        try:
            for node in self.nodes:
                self._spawn(node)
            self._await_ready(self.nodes)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every node (SIGTERM to all at once, SIGKILL what outlives the stop timeout)."""
        running = [n for n in self.nodes if n.running]
        for node in running:
            self._signal(node, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for node in running:
            self._reap(node, deadline)
        for node in self.nodes:
            self._close_log(node)
        if running:
            logger.info("Kafka stopped (%d node(s))", len(running))

    def stop_node(self, i: int) -> None:
        """Stop node ``i`` (0-based) cleanly: SIGTERM, SIGKILL after the stop timeout."""
        node = self.nodes[i]
        if node.running:
            self._signal(node, signal.SIGTERM)
            self._reap(node, time.monotonic() + self.stop_timeout)
        self._close_log(node)

    def kill_node(self, i: int) -> None:
        """SIGKILL node ``i`` (0-based), as a crash would."""
        node = self.nodes[i]
        if node.running:
            self._signal(node, signal.SIGKILL)
            assert node.process is not None
            node.process.wait(10)
        self._close_log(node)

    def start_node(self, i: int) -> None:
        """Start node ``i`` (0-based) again on its data; return once it is a registered broker."""
        node = self.nodes[i]
        if node.running:
            raise BrokerError(f"Kafka node {node.node_id} is already running")
        self._spawn(node)
        self._await_ready([node])

    def wait(self, poll: float = 0.2) -> Optional[int]:
        """Block until a node exits; its exit code (``None`` if none was running)."""
        while True:
            running = [n for n in self.nodes if n.process is not None]
            if not running:
                return None
            for node in running:
                assert node.process is not None
                code = node.process.poll()
                if code is not None:
                    return code
            time.sleep(poll)

    # -- cluster state ------------------------------------------------------------------------
    def active_controller(self, timeout: float = 15.0) -> int:
        """Node id of the active KRaft controller (the quorum's leader), as the quorum reports it.

        Raises :class:`BrokerError` if no running node knows one within ``timeout`` (during an
        election, say): callers wait by asking again.
        """
        voters = ",".join(f"{self.host}:{n.controller_port}" for n in self.nodes if n.running)
        if not voters:
            raise BrokerError("no Kafka node is running")
        return quorum_leader(voters, lib_dir=self.lib_dir, config_path=self.data_dir / "tools.properties",
                             timeout=timeout)

    def partition_leaders(self, topic: str) -> dict[int, Optional[int]]:
        """Partition → node id of its leader (``None`` while it has none)."""
        return {p["partition"]: (p["leader"] if p["leader"] >= 0 else None) for p in self._partitions(topic)}

    def in_sync_replicas(self, topic: str) -> dict[int, list[int]]:
        """Partition → node ids of its in-sync replicas."""
        return {p["partition"]: sorted(p["isr"]) for p in self._partitions(topic)}

    def brokers(self, timeout: float = 10.0) -> list[int]:
        """Node ids of the brokers the cluster's metadata lists now (registered and unfenced)."""
        return registered_brokers(self._live_bootstrap, timeout)

    # -- internals ------------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Write each node's config; format the storage of nodes that have none yet."""
        self._save_state()
        (self.data_dir / "log4j2.properties").write_text(LOG4J2)
        for node in self.nodes:
            node.folder.mkdir(parents=True, exist_ok=True)
            node.config_path.write_text("".join(f"{k}={v}\n" for k, v in self._config(node).items()))
        todo = [n for n in self.nodes if not (n.folder / "data" / "meta.properties").exists()]
        if not todo:
            return
        logger.info("formatting Kafka storage of node(s) %s (cluster id %s)", [n.node_id for n in todo],
                    self.cluster_id)
        format_storage(todo, self.cluster_id, self.lib_dir)

    def _save_state(self) -> None:
        """Keep the cluster id and ports for the next start on this data folder."""
        save_state(self.data_dir, self.cluster_id, self.nodes)

    def _config(self, node: KafkaNode) -> dict[str, str]:
        """``server.properties`` of ``node``: a combined KRaft node, replication sized to the cluster."""
        return node_config(node, self.nodes, self.host, self.settings)

    def _spawn(self, node: KafkaNode) -> None:
        if not port_is_free(self.host, node.port) or not port_is_free(self.host, node.controller_port):
            raise BrokerError(f"cannot start Kafka node {node.node_id}: port {node.port} or "
                              f"{node.controller_port} on {self.host} is already in use")
        cmd = ["java", *self.jvm_options, f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
               f"-Dkafka.logs.dir={node.folder}", "-cp", classpath(self.lib_dir), "kafka.Kafka", str(node.config_path)]
        if self.max_lifetime is not None:
            # coreutils' timeout forwards our signals to the JVM, and kills it at the deadline
            # even if this process is gone by then.
            cmd = ["timeout", "--kill-after=10", f"{self.max_lifetime:g}", *cmd]
        node.log = open(node.log_path, "ab")  # closed by _close_log, when the node has stopped
        node.log.write(f"\n===== start {time.strftime('%Y-%m-%d %H:%M:%S')} =====\n".encode())
        node.log.flush()
        # Its own session (process group): a Ctrl-C meant for our caller does not reach it,
        # and a signal to the group reaches the JVM behind the timeout wrapper too.
        node.process = subprocess.Popen(cmd, stdout=node.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        logger.info("started Kafka node %d on %s:%d (controller :%d), pid %d, log %s", node.node_id, self.host,
                    node.port, node.controller_port, node.process.pid, node.log_path)

    def _await_ready(self, nodes: Sequence[KafkaNode]) -> None:
        """Until each of ``nodes`` answers and the cluster lists every running node as a broker."""
        started = time.monotonic()
        deadline = started + self.startup_timeout
        waiting = list(nodes)
        while waiting:
            for node in list(waiting):
                self._check_alive(node)
                if kafka_api_versions_ok(self.host, node.port, timeout=0.5):
                    waiting.remove(node)
            if waiting:
                self._check_deadline(deadline, f"node(s) {[n.node_id for n in waiting]} to answer")
                time.sleep(0.1)
        wanted = sorted(n.node_id for n in self.nodes if n.running)
        while True:
            for node in nodes:
                self._check_alive(node)
            try:
                if self.brokers(timeout=10) == wanted:
                    break
            except Exception as exc:  # noqa: BLE001 - not ready yet: ask again until the deadline
                logger.debug("Kafka metadata not ready: %r", exc)
            self._check_deadline(deadline, f"brokers {wanted} to be registered")
            time.sleep(0.2)
        logger.info("Kafka ready in %.1f s: %s", time.monotonic() - started, self.url)

    def _check_alive(self, node: KafkaNode) -> None:
        assert node.process is not None
        code = node.process.poll()
        if code is not None:
            self._close_log(node)
            raise BrokerError(f"Kafka node {node.node_id} exited with code {code} while starting "
                              f"(log {node.log_path}):\n{node.tail()}")

    def _check_deadline(self, deadline: float, what: str) -> None:
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- node {n.node_id} ({n.log_path}) ---\n{n.tail(15)}" for n in self.nodes)
            raise BrokerError(f"timed out after {self.startup_timeout:g} s waiting for Kafka {what}\n{tails}")

    def _partitions(self, topic: str, timeout: float = 15.0) -> list[dict[str, Any]]:
        return describe_partitions(self._live_bootstrap, topic, timeout)

    def _live_bootstrap(self) -> str:
        live = [n for n in self.nodes if n.running] or self.nodes
        return ",".join(f"{self.host}:{n.port}" for n in live)

    @staticmethod
    def _jvm_pid(node: KafkaNode) -> Optional[int]:
        """The JVM's pid: the process itself, or the child of its ``timeout`` wrapper."""
        assert node.process is not None
        pid = node.process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return pid
        return int(children[0]) if children else pid

    @staticmethod
    def _signal(node: KafkaNode, sig: int) -> None:
        assert node.process is not None
        try:
            os.killpg(node.process.pid, sig)  # the JVM and its timeout wrapper, if any
        except ProcessLookupError:
            pass

    def _reap(self, node: KafkaNode, deadline: float) -> None:
        assert node.process is not None
        try:
            node.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("Kafka node %d did not stop within %g s: killing it", node.node_id, self.stop_timeout)
            self._signal(node, signal.SIGKILL)
            node.process.wait(10)

    @staticmethod
    def _close_log(node: KafkaNode) -> None:
        if node.log is not None:
            node.log.close()
            node.log = None

    def __enter__(self) -> "LocalKafka":
        return self.start()

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.stop()
