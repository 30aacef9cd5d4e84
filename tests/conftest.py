"""Fixtures: a real embedded broker for the session, clusters of real workers per test."""

from __future__ import annotations

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

    def make(**kwargs: object) -> Cluster:
        c = Cluster(broker.url, tmp_path / f"cluster{len(made)}", **kwargs)  # type: ignore[arg-type]
        made.append(c)
        return c

    yield make
    failed = getattr(request.node, "rep_call", None)
    for c in made:
        c.stop()
    if failed is not None and failed.failed:
        for c in made:
            print(c.dump_logs())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep
