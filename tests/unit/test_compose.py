"""docker-compose.yml and the worker image, checked without a Docker engine.

The file is parsed (PyYAML resolves the ``<<:`` merges the way Compose does) and its
essentials asserted: a 3-node KRaft quorum with consistent ids, listeners and cluster
id; replication factor 3 and min.insync.replicas 2 on the brokers and on the topics the
workers create; workers that scale (no container name, no fixed host port, one data
volume each), wait for healthy brokers and point at all three; and no ``YADTQ_*``
variable that the settings do not read. The Dockerfile is checked for what the
compose file relies on. When Debian's ``docker-compose`` (v1) is installed, its
``config`` command validates the file against the Compose schema as well.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from yadtq_app.kafka.profiles import profile_for
from yadtq_app.settings import ENV, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
README = ROOT / "README.md"
YADTQ_VARS = {var for var, _ in ENV.values()}


def load() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def brokers(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items()
            if str(svc.get("image", "")).startswith("apache/kafka:")}


def env(svc: dict[str, Any]) -> dict[str, str]:
    raw = svc.get("environment") or {}
    if isinstance(raw, list):  # the "KEY=value" form
        raw = dict(item.split("=", 1) for item in raw)
    return {k: str(v) for k, v in raw.items()}


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` → {NAME: (host, port)}."""
    out = {}
    for item in value.split(","):
        name, _, address = item.strip().partition("://")
        host, _, port = address.rpartition(":")
        out[name] = (host, int(port))
    return out


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load()


@pytest.fixture(scope="module")
def worker(compose: dict[str, Any]) -> dict[str, Any]:
    svc = compose["services"]["worker"]
    assert isinstance(svc, dict)
    return svc


# -- the Kafka cluster ---------------------------------------------------------------------------

def test_three_kraft_brokers_on_a_pinned_official_image(compose: dict[str, Any]) -> None:
    nodes = brokers(compose)
    assert len(nodes) == 3
    for svc in nodes.values():
        tag = svc["image"].split(":", 1)[1]
        assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"pin an exact apache/kafka release, not {tag!r}"
        e = env(svc)
        assert set(e["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
        assert "KAFKA_ZOOKEEPER_CONNECT" not in e


def test_node_ids_are_distinct(compose: dict[str, Any]) -> None:
    ids = [int(env(svc)["KAFKA_NODE_ID"]) for svc in brokers(compose).values()]
    assert sorted(ids) == [1, 2, 3]


def test_quorum_voters_list_every_node_at_its_controller_listener(compose: dict[str, Any]) -> None:
    nodes = brokers(compose)
    voters = {env(svc)["KAFKA_CONTROLLER_QUORUM_VOTERS"] for svc in nodes.values()}
    assert len(voters) == 1, "every node must have the same quorum voters"
    parsed = {}
    for voter in voters.pop().split(","):
        node_id, _, address = voter.partition("@")
        host, _, port = address.rpartition(":")
        parsed[int(node_id)] = (host, int(port))
    expected = {}
    for name, svc in nodes.items():
        e = env(svc)
        controller = e["KAFKA_CONTROLLER_LISTENER_NAMES"]
        expected[int(e["KAFKA_NODE_ID"])] = (name, listeners(e["KAFKA_LISTENERS"])[controller][1])
    assert parsed == expected


def test_one_valid_cluster_id(compose: dict[str, Any]) -> None:
    ids = {env(svc)["CLUSTER_ID"] for svc in brokers(compose).values()}
    assert len(ids) == 1
    cluster_id = ids.pop()
    # Kafka's Uuid.fromString: URL-safe base64 of 16 bytes, 22 characters without padding.
    assert len(cluster_id) == 22
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_listeners_are_consistent_and_advertised_for_containers(compose: dict[str, Any]) -> None:
    host_ports = []
    for name, svc in brokers(compose).items():
        e = env(svc)
        bound = listeners(e["KAFKA_LISTENERS"])
        advertised = listeners(e["KAFKA_ADVERTISED_LISTENERS"])
        protocols = dict(item.split(":") for item in e["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
        controller, internal = e["KAFKA_CONTROLLER_LISTENER_NAMES"], e["KAFKA_INTER_BROKER_LISTENER_NAME"]
        assert set(bound) <= set(protocols) and controller in bound and internal in bound
        assert controller not in advertised
        assert set(advertised) <= set(bound)
        for listener, (_, port) in advertised.items():
            assert bound[listener][1] == port, f"{name}: {listener} advertised on another port than it binds"
        # Other containers (brokers and workers) reach the node by its service name.
        assert advertised[internal][0] == name == svc.get("hostname", name)
        # Any other advertised listener is for the host and must be published there.
        published = {str(p) for p in svc.get("ports", [])}
        for listener, (host, port) in advertised.items():
            if listener != internal:
                assert f"{host}:{port}:{port}" in published, f"{name}: {listener} is advertised but not published"
                host_ports.append(port)
    assert len(host_ports) == len(set(host_ports))


def test_brokers_replicate_three_ways_and_require_two_in_sync(compose: dict[str, Any]) -> None:
    for svc in brokers(compose).values():
        e = env(svc)
        assert e["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert e["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert e["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert e["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3"
        assert e["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert e["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_each_broker_keeps_its_log_on_its_own_volume(compose: dict[str, Any]) -> None:
    volumes = []
    for svc in brokers(compose).values():
        log_dir = env(svc)["KAFKA_LOG_DIRS"]
        mounts = [str(v).split(":") for v in svc.get("volumes", [])]
        named = [src for src, dst, *_ in mounts if dst == log_dir]
        assert len(named) == 1, f"{log_dir} is not on a volume"
        volumes.append(named[0])
    assert len(set(volumes)) == 3 and set(volumes) <= set(load().get("volumes") or {})


def test_brokers_have_healthchecks(compose: dict[str, Any]) -> None:
    for name, svc in brokers(compose).items():
        check = svc.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        internal = env(svc)["KAFKA_INTER_BROKER_LISTENER_NAME"]
        port = listeners(env(svc)["KAFKA_LISTENERS"])[internal][1]
        assert f"localhost:{port}" in " ".join(check["test"])


# -- the workers ---------------------------------------------------------------------------------

def test_worker_service_scales(worker: dict[str, Any]) -> None:
    assert "container_name" not in worker and "hostname" not in worker
    for mapping in worker.get("ports", []):
        # Short syntax [IP:][HOST:]CONTAINER: the host part must be empty (Docker picks a
        # free port per replica). A host range races under `--scale` in Compose v2.
        parts = str(mapping).split(":")
        assert len(parts) == 3 and parts[1] == "", f"fixed host port {mapping!r} clashes when scaled"
        assert parts[0] == "127.0.0.1", "publish the unauthenticated API on loopback only"


def test_worker_waits_for_healthy_brokers(compose: dict[str, Any], worker: dict[str, Any]) -> None:
    depends = worker["depends_on"]
    assert set(depends) == set(brokers(compose))
    assert all(dep["condition"] == "service_healthy" for dep in depends.values())


def test_worker_has_a_healthcheck_on_its_api(worker: dict[str, Any]) -> None:
    check = worker.get("healthcheck") or {}
    assert check.get("test") and not check.get("disable")
    assert "yadtq-healthcheck" in " ".join(check["test"])
    assert "/health" in (ROOT / "docker" / "healthcheck.py").read_text()


def test_worker_settings_point_at_all_brokers_with_the_kafka_profile(compose: dict[str, Any],
                                                                     worker: dict[str, Any]) -> None:
    settings = Settings.from_env(env(worker))
    internal = set()
    for name, svc in brokers(compose).items():
        e = env(svc)
        internal.add((name, listeners(e["KAFKA_ADVERTISED_LISTENERS"])[e["KAFKA_INTER_BROKER_LISTENER_NAME"]][1]))
    assert set(settings.broker_hosts) == internal and len(settings.broker_hosts) == 3
    assert settings.broker_profile == "kafka" and settings.resolved_profile == "kafka"
    assert settings.replication_factor == 3 and settings.min_insync_replicas == 2
    assert settings.partitions >= 3 * settings.replication_factor
    profile = profile_for(settings)
    assert profile.faust_options()["producer_acks"] == -1
    assert profile.faust_options()["topic_replication_factor"] == 3
    assert profile.topic_config() == {"min.insync.replicas": "2"}


def test_worker_advertises_its_own_address(worker: dict[str, Any]) -> None:
    # A fixed YADTQ_WEB_HOST (0.0.0.0 or a name shared by all replicas) would route
    # every worker's reads to the wrong place; the image's entry point sets it.
    assert "YADTQ_WEB_HOST" not in env(worker)
    assert "YADTQ_WEB_HOST" in (ROOT / "docker" / "entrypoint.sh").read_text()


def test_worker_data_dir_is_a_per_container_volume(worker: dict[str, Any]) -> None:
    data_dir = env(worker)["YADTQ_DATA_DIR"]
    assert not any(str(v).split(":")[-1] == data_dir for v in worker.get("volumes", [])), \
        "a named volume at the data dir would be shared by every replica"
    assert re.search(rf'^VOLUME \["{re.escape(data_dir)}"\]', DOCKERFILE.read_text(), re.M)


def test_every_yadtq_variable_is_read_by_settings(compose: dict[str, Any]) -> None:
    used = {var for svc in compose["services"].values() for var in env(svc) if var.startswith("YADTQ_")}
    used |= set(re.findall(r"\bYADTQ_[A-Z_]+\b", COMPOSE.read_text()))
    assert used and used <= YADTQ_VARS, f"not settings: {sorted(used - YADTQ_VARS)}"


# -- the image -----------------------------------------------------------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    lines = DOCKERFILE.read_text().replace("\\\n", " ").splitlines()
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines
            if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_copies_every_package_and_script() -> None:
    copies = [args.split() for op, args in dockerfile_instructions() if op == "COPY"]
    sources = {src.rstrip("/") for args in copies for src in args[:-1] if not src.startswith("--")}
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: no such file"
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    setuptools_conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {setuptools_conf.get("package-dir", {}).get(package, package.replace(".", "/")).split("/")[0]
               for package in setuptools_conf["packages"]}
    assert folders <= sources
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert not sources & ignored
    for script in ("docker/entrypoint.sh", "docker/healthcheck.py"):
        assert os.stat(ROOT / script).st_mode & stat.S_IXUSR, f"{script} is not executable"


def test_dockerfile_runs_the_worker_through_the_entrypoint() -> None:
    ops = dict(dockerfile_instructions())
    assert ops["FROM"].startswith("python:3.")
    assert "yadtq-entrypoint" in ops["ENTRYPOINT"] and '"yadtq", "worker"' in ops["CMD"]
    assert ops["USER"] != "root"
    for var in re.findall(r"\bYADTQ_[A-Z_]+\b", DOCKERFILE.read_text()):
        assert var in YADTQ_VARS


def test_readme_kafka_section_uses_real_settings() -> None:
    text = README.read_text()
    section = text[text.index("## Running on Apache Kafka"):]
    section = section[:section.find("\n## ", 1)] if "\n## " in section[1:] else section
    used = set(re.findall(r"\bYADTQ_[A-Z_]+\b", section))
    assert {"YADTQ_SECURITY_PROTOCOL", "YADTQ_SASL_USERNAME", "YADTQ_SSL_CAFILE"} <= used
    assert used <= YADTQ_VARS | {"YADTQ_URL"}  # YADTQ_URL is the CLI's
    assert "--scale worker=" in section


# -- optional: the Compose schema, through Debian's docker-compose (v1) ---------------------------

@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_docker_compose_config_validates() -> None:
    result = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config"], capture_output=True, text=True,
                            timeout=120, cwd=ROOT, env={**os.environ, "DOCKER_HOST": "unix:///nonexistent"})
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) == set(load()["services"])
    # The merges resolved as in our own parsing.
    assert env(resolved["services"]["kafka-2"])["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    assert "container_name" not in resolved["services"]["worker"]
