"""PeerTasks: which alive workers lack a task, and the warning for a differing set."""

from __future__ import annotations

from yadtq_app.peers import PeerTasks, differing
from yadtq_app.registry import names_digest


def row(worker: str, tasks: list[str], alive: bool = True) -> dict[str, object]:
    return {"id": worker, "alive": alive, "tasks": tasks, "tasks_digest": names_digest(tasks)}


def test_a_task_only_some_workers_register_names_the_others() -> None:
    peers = PeerTasks("me", ["a", "b"], names_digest(["a", "b"]))
    warnings = peers.update([row("me", ["a", "b"]), row("w2", ["a"]), row("dead", [], alive=False)])
    assert peers.lacking("a") == [] and peers.lacking("b") == ["w2"]
    assert peers.lacking("c") == ["me", "w2"] and peers.anywhere("b") and not peers.anywhere("c")
    assert len(warnings) == 1 and "w2" in warnings[0] and "lacks b" in warnings[0]
    assert peers.update([row("w2", ["a"])]) == []  # said once


def test_the_same_sets_neither_differ_nor_warn() -> None:
    peers = PeerTasks("me", ["a"], names_digest(["a"]))
    assert peers.update([row("me", ["a"]), row("w2", ["a"])]) == []
    assert differing([row("me", ["a"]), row("w2", ["a"]), row("old", ["x"], alive=False)]) == set()
    assert differing([row("me", ["a"]), row("w2", ["b"])]) == {"me", "w2"}  # the control case


def test_before_any_view_only_this_worker_counts() -> None:
    peers = PeerTasks("me", ["a"], names_digest(["a"]))
    assert peers.lacking("a") == [] and peers.lacking("b") == ["me"]
