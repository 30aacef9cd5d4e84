"""LocalKafka's node configs and data-folder bookkeeping, without starting a JVM."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from yadtq_app.errors import BrokerError
from yadtq_app.kafka_local import LocalKafka
from yadtq_app.kafka_local_nodes import missing_requirements, new_cluster_id


def configs(kafka: LocalKafka) -> list[dict[str, str]]:
    return [kafka._config(node) for node in kafka.nodes]


def test_three_nodes_form_one_quorum_and_replicate_everything_three_times(tmp_path: Path) -> None:
    kafka = LocalKafka(3, data_dir=tmp_path)
    c1, c2, c3 = configs(kafka)
    assert [c["node.id"] for c in (c1, c2, c3)] == ["1", "2", "3"]
    voters = {c["controller.quorum.voters"] for c in (c1, c2, c3)}
    assert len(voters) == 1 and voters.pop().count("@127.0.0.1:") == 3
    for c in (c1, c2, c3):
        assert c["process.roles"] == "broker,controller"
        assert c["default.replication.factor"] == c["offsets.topic.replication.factor"] == "3"
        assert c["transaction.state.log.replication.factor"] == "3"
        assert c["min.insync.replicas"] == c["transaction.state.log.min.isr"] == "2"
    ports = [n.port for n in kafka.nodes] + [n.controller_port for n in kafka.nodes]
    assert len(set(ports)) == 6
    assert kafka.url == "kafka://" + ";".join(f"127.0.0.1:{n.port}" for n in kafka.nodes)
    assert kafka.bootstrap == ",".join(f"127.0.0.1:{n.port}" for n in kafka.nodes)


def test_one_node_replicates_nothing_and_caller_settings_win(tmp_path: Path) -> None:
    kafka = LocalKafka(1, data_dir=tmp_path, port=19092, settings={"group.initial.rebalance.delay.ms": 0,
                                                                   "min.insync.replicas": 1})
    [c] = configs(kafka)
    assert c["default.replication.factor"] == c["offsets.topic.replication.factor"] == "1"
    assert c["transaction.state.log.min.isr"] == "1"
    assert c["group.initial.rebalance.delay.ms"] == "0"
    assert c["listeners"].startswith("PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:")
    assert kafka.url == "kafka://127.0.0.1:19092"


def test_a_data_folder_keeps_its_cluster_id_and_ports(tmp_path: Path) -> None:
    first = LocalKafka(3, data_dir=tmp_path)
    first._save_state()  # what start() does first
    again = LocalKafka(3, data_dir=tmp_path)
    assert again.cluster_id == first.cluster_id
    assert [(n.port, n.controller_port) for n in again.nodes] == [(n.port, n.controller_port) for n in first.nodes]
    assert len(base64.urlsafe_b64decode(first.cluster_id + "==")) == 16  # what StorageTool takes
    with pytest.raises(BrokerError, match="3-node"):
        LocalKafka(1, data_dir=tmp_path)


def test_missing_jars_are_named_with_the_make_target(tmp_path: Path) -> None:
    problem = missing_requirements(tmp_path)
    assert problem is not None and ("make kafka-jars" in problem or "java" in problem)


def test_cluster_ids_never_look_like_an_option() -> None:
    # One in 64 base64url ids starts with '-': StorageTool's parser then took it for an
    # option ("argument --cluster-id/-t: expected one argument").
    ids = [new_cluster_id() for _ in range(2000)]
    assert not [c for c in ids if c.startswith("-")]
    assert all(len(c) == 22 and len(base64.urlsafe_b64decode(c + "==")) == 16 for c in ids)
