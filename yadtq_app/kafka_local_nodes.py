"""The plan of a local Kafka cluster: its nodes, their ports and ``server.properties``, its
id and the ``cluster.json`` that keeps them, and formatting the nodes' storage.

No process is started here but the short-lived storage tool; :mod:`yadtq_app.kafka_local`
runs the nodes.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import shutil
import socket
import subprocess
import uuid
from pathlib import Path
from typing import IO, Mapping, Optional, Sequence

from .errors import BrokerError

__all__ = ["KafkaNode", "DEFAULT_LIB_DIR", "TOOL_OPTIONS", "missing_requirements", "new_cluster_id", "free_ports",
           "load_or_plan", "save_state", "node_config", "format_storage", "classpath"]

#: Where ``make kafka-jars`` puts Kafka's jars (the project's ``.kafka/lib``).
DEFAULT_LIB_DIR = Path(__file__).resolve().parents[1] / ".kafka" / "lib"
#: JVM options of the short-lived tools (storage format, quorum status).
TOOL_OPTIONS = ("-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")
STATE_FILE = "cluster.json"


class KafkaNode:
    """One Kafka JVM, broker and controller: its id, ports, folder and (once started) process."""

    def __init__(self, node_id: int, port: int, controller_port: int, folder: Path) -> None:
        self.node_id = node_id
        self.port = port
        self.controller_port = controller_port
        self.folder = folder
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.log: Optional[IO[bytes]] = None

    @property
    def config_path(self) -> Path:
        return self.folder / "server.properties"

    @property
    def log_path(self) -> Path:
        return self.folder / "kafka.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, n: int = 40) -> str:
        """The last ``n`` lines of the node's log (``(no log)`` if it has none)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def missing_requirements(lib_dir: Path = DEFAULT_LIB_DIR) -> Optional[str]:
    """Why Kafka cannot run here (no ``java``, no jars), or ``None`` if it can."""
    if shutil.which("java") is None:
        return "Apache Kafka needs Java 17+ (no java on PATH)"
    if not any(lib_dir.glob("kafka_2.13-*.jar")):
        return f"Apache Kafka's jars are not in {lib_dir}: run `make kafka-jars` (needs Maven)"
    return None


def classpath(lib_dir: Path) -> str:
    """The JVM classpath of every jar in ``lib_dir``."""
    return f"{lib_dir}/*"


def new_cluster_id() -> str:
    """A new KRaft cluster id: a UUID as 22 characters of base64url, not starting with
    ``-`` (the storage tool would take it for an option; Kafka's own ``Uuid.randomUuid``
    skips those too)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def free_ports(host: str, n: int) -> list[int]:
    """``n`` distinct ports free on ``host`` now."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((host, 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def load_or_plan(data_dir: Path, host: str, n: int, port: Optional[int]) -> tuple[str, list[int], list[int]]:
    """The cluster id, client ports and controller ports of an ``n``-node cluster in
    ``data_dir``: kept from an earlier start there, or new (client ports from ``port`` on,
    if given). :class:`BrokerError` if the folder holds a cluster of another size."""
    state_path = data_dir / STATE_FILE
    if state_path.exists():
        state = json.loads(state_path.read_text())
        if len(state["nodes"]) != n:
            raise BrokerError(f"{data_dir} holds a {len(state['nodes'])}-node Kafka cluster, not {n}: "
                              "use another data folder or delete it")
        ports = [node["port"] for node in state["nodes"]]
        if port is not None:
            ports = [port + i for i in range(n)]
        return state["cluster_id"], ports, [node["controller_port"] for node in state["nodes"]]
    free = free_ports(host, 2 * n if port is None else n)
    ports = [port + i for i in range(n)] if port is not None else free[n:]
    return new_cluster_id(), ports, free[:n]


def save_state(data_dir: Path, cluster_id: str, nodes: Sequence[KafkaNode]) -> None:
    """Keep the cluster id and ports for the next start on ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    state = {"cluster_id": cluster_id,
             "nodes": [{"id": n.node_id, "port": n.port, "controller_port": n.controller_port} for n in nodes]}
    (data_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")


def node_config(node: KafkaNode, nodes: Sequence[KafkaNode], host: str,
                settings: Mapping[str, str]) -> dict[str, str]:
    """``server.properties`` of ``node``: a combined KRaft node, replication sized to the
    cluster, ``settings`` over the built-in entries."""
    h, n = host, len(nodes)
    replicas = min(n, 3)
    min_isr = 2 if n >= 3 else 1
    config = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": ",".join(f"{x.node_id}@{h}:{x.controller_port}" for x in nodes),
        "listeners": f"PLAINTEXT://{h}:{node.port},CONTROLLER://{h}:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{h}:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(node.folder / "data"),
        "default.replication.factor": str(replicas),
        "min.insync.replicas": str(min_isr),
        "offsets.topic.replication.factor": str(replicas),
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": str(min_isr),
        "share.coordinator.state.topic.replication.factor": str(replicas),
        "share.coordinator.state.topic.min.isr": str(min_isr),
    }
    config.update(settings)
    return config


def format_storage(nodes: Sequence[KafkaNode], cluster_id: str, lib_dir: Path) -> None:
    """Format the storage of ``nodes`` (in parallel) for cluster ``cluster_id``; their
    ``server.properties`` must be written. :class:`BrokerError` with the tool's output if
    one fails."""
    def run(node: KafkaNode) -> subprocess.CompletedProcess[str]:
        cmd = ["java", *TOOL_OPTIONS, "-cp", classpath(lib_dir), "kafka.tools.StorageTool", "format",
               "-t", cluster_id, "-c", str(node.config_path), "--ignore-formatted"]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
        results = list(pool.map(run, nodes))
    failed = [(n, r) for n, r in zip(nodes, results) if r.returncode != 0]
    if failed:
        node, r = failed[0]
        raise BrokerError(f"formatting Kafka node {node.node_id}'s storage failed (exit {r.returncode}):\n"
                          f"{(r.stdout + r.stderr).strip()[-1500:]}")
