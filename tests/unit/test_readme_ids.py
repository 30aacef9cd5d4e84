"""The README's examples, followed in order, never reuse a task id (a reused id is a duplicate that runs nothing)."""

from __future__ import annotations

import re
from pathlib import Path

from yadtq_app.cli_servers import _banner

ROOT = Path(__file__).resolve().parents[2]


def submitted_ids(text: str) -> list[str]:
    return re.findall(r'"task-id": "([^"]+)"', text)


def test_every_example_submits_its_own_id() -> None:
    readme = (ROOT / "README.md").read_text()
    ids = submitted_ids(readme) + submitted_ids(_banner("kafka://x", [], ["http://127.0.0.1:6066"]))
    assert len(ids) >= 3
    assert len(ids) == len(set(ids)), f"README and `make run` banner reuse task ids: {ids}"


def test_the_check_sees_a_reused_id() -> None:  # the control case
    assert submitted_ids('{"task-id": "a"} {"task-id": "a"}') == ["a", "a"]
