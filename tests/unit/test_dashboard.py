"""The dashboard's merge of the workers' task lists."""

from __future__ import annotations

from yadtq_app.dashboard import merge_tasks, row_time


def _row(task_id: str, status: str, *times: float) -> dict:
    history = [{"attempt": i + 1, "started_at": t, "finished_at": t} for i, t in enumerate(times[1:])]
    return {"task-id": task_id, "status": status, "submitted_at": times[0], "history": history}


def test_row_time_is_the_newest_time_in_the_row() -> None:
    assert row_time(_row("a", "failed", 10.0, 12.0, 15.0)) == 15.0
    assert row_time({"task-id": "b", "status": "queued"}) == 0.0


def test_merge_keeps_the_newest_row_of_each_task_newest_first() -> None:
    # A partition moved between two workers: both answered a row for task "a".
    old_a, new_a = _row("a", "processing", 10.0), _row("a", "success", 10.0, 20.0)
    b, c = _row("b", "queued", 15.0), _row("c", "failed", 5.0, 6.0)
    merged = merge_tasks([[old_a, b], [new_a, c]], limit=10)
    assert [r["task-id"] for r in merged] == ["a", "b", "c"]
    assert merged[0]["status"] == "success"
    assert [r["task-id"] for r in merge_tasks([[old_a, b], [new_a, c]], limit=2)] == ["a", "b"]
