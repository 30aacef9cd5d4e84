"""Fixtures: a real embedded broker for the session, clusters of real workers per test."""

from __future__ import annotations

# pytest's unraisable-exception hook imports tracemalloc lazily; when the first unclosed
# socket is garbage-collected *during* that import, the hook finds the module half
# initialised and fails the test that happens to run (seen once under load). Imported
# here, it is complete before any test runs.
import tracemalloc  # noqa: F401
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.cluster import Cluster, free_port
from yadtq_app.broker import EmbeddedBroker


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One embedded broker for the whole run, on a free port."""
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    b = EmbeddedBroker("127.0.0.1", free_port(), log_path=str(log))
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def cluster_factory(broker: EmbeddedBroker, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[object]:
    """Make clusters of worker processes; all are stopped after the test."""
    made: list[Cluster] = []
    request.node.yadtq_clusters = made  # for the report hook below

    def make(**kwargs: object) -> Cluster:
        c = Cluster(broker.url, tmp_path / f"cluster{len(made)}", **kwargs)  # type: ignore[arg-type]
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


@pytest.fixture(scope="session")
def _shared(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("shared")
    cluster = Cluster(broker.url, workdir / "cluster",
                      extra_env={"YADTQ_TEST_LEDGER": str(workdir / "ledger.jsonl")})
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
