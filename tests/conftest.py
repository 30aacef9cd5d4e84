"""Fixtures: a real broker for the session, clusters of real workers per test.

Every test that uses the ``broker`` fixture runs twice, on the embedded broker and on
Apache Kafka (one KRaft node), grouped by broker: ids end in ``[embedded]`` / ``[kafka]``.
A test about one broker's own behaviour is marked ``embedded_only`` or ``kafka_only``.
Where Java or Kafka's jars are missing the Kafka half is skipped, and fails under
``YADTQ_REQUIRE_KAFKA=1`` (CI).
"""

from __future__ import annotations

# pytest's unraisable-exception hook imports tracemalloc lazily; when the first unclosed
# socket is garbage-collected *during* that import, the hook finds the module half
# initialised and fails the test that happens to run (seen once under load). Imported
# here, it is complete before any test runs.
import tracemalloc  # noqa: F401
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.brokers import (
    KAFKA3_TEST_SETTINGS,
    KAFKA_MAX_LIFETIME,
    KAFKA_TEST_SETTINGS,
    KAFKA_WORKER_ENV,
    TestBroker,
    kafka_or_skip,
)
from tests.support.cluster import Cluster, free_port
from yadtq_app.broker import EmbeddedBroker
from yadtq_app.kafka_local import LocalKafka

BROKER_KINDS = ("embedded", "kafka")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that needs the broker on each kind its markers allow."""
    if "broker" not in metafunc.fixturenames:
        return
    kinds = list(BROKER_KINDS)
    if metafunc.definition.get_closest_marker("embedded_only"):
        kinds = ["embedded"]
    if metafunc.definition.get_closest_marker("kafka_only"):
        kinds = ["kafka"]
    metafunc.parametrize("broker", kinds, indirect=True, scope="session")


@pytest.fixture(scope="session")
def broker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestBroker]:
    """One broker of each kind for the whole run: the embedded one on a free port, or
    Apache Kafka (one KRaft node) with quick group settings."""
    kind = getattr(request, "param", "embedded")
    if kind == "kafka":
        kafka_or_skip()
        server: EmbeddedBroker | LocalKafka = LocalKafka(
            1, data_dir=tmp_path_factory.mktemp("kafka"), settings=KAFKA_TEST_SETTINGS,
            max_lifetime=KAFKA_MAX_LIFETIME)
        b = TestBroker(kind, server, dict(KAFKA_WORKER_ENV))
    else:
        log = tmp_path_factory.mktemp("broker") / "broker.log"
        b = TestBroker(kind, EmbeddedBroker("127.0.0.1", free_port(), log_path=str(log)))
    b.server.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="session")
def kafka3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """Apache Kafka with three KRaft nodes (replication factor 3, min.insync.replicas 2),
    settings for quick broker failover. Workers on it need ``KAFKA_WORKER_ENV``."""
    kafka_or_skip()
    kafka = LocalKafka(3, data_dir=tmp_path_factory.mktemp("kafka3"), settings=KAFKA3_TEST_SETTINGS,
                       max_lifetime=KAFKA_MAX_LIFETIME)
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture
def cluster_factory(broker: TestBroker, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[object]:
    """Make clusters of worker processes; all are stopped after the test."""
    made: list[Cluster] = []
    request.node.yadtq_clusters = made  # for the report hook below

    def make(**kwargs: object) -> Cluster:
        env = {**broker.env, **(kwargs.pop("extra_env", None) or {})}  # type: ignore[dict-item]
        c = Cluster(broker.url, tmp_path / f"cluster{len(made)}", extra_env=env, **kwargs)  # type: ignore[arg-type]
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


@pytest.fixture(scope="session")
def _shared(broker: TestBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("shared")
    cluster = Cluster(broker.url, workdir / "cluster",
                      extra_env={**broker.env, "YADTQ_TEST_LEDGER": str(workdir / "ledger.jsonl")})
    try:
        cluster.start(2)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def shared_cluster(_shared: Cluster, request: pytest.FixtureRequest) -> Cluster:
    """Two workers shared by every test that neither stops them nor needs special
    settings (a cluster start costs seconds). Such tests use their own task ids; the
    workers write the execution ledger at ``shared_cluster.ledger_path``."""
    request.node.yadtq_clusters = [_shared]  # worker logs in the report of a failed test
    assert len(_shared.running()) == 2, "a test stopped a shared worker"
    return _shared


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """On a failed test, show the tails of its workers' logs."""
    rep = yield
    if rep.when == "call" and rep.failed:
        for i, c in enumerate(getattr(item, "yadtq_clusters", [])):
            rep.sections.append((f"worker logs (cluster {i})", c.dump_logs()))
    return rep
