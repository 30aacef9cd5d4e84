"""The public surface of yadtq_app, and that the client side never imports Faust."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import yadtq_app

ROOT = Path(__file__).resolve().parents[2]

PUBLIC = [
    "Client",
    "ClientError",
    "ConfigurationError",
    "Conflict",
    "InvalidTask",
    "Retry",
    "Settings",
    "TaskCancelled",
    "TaskContext",
    "TaskFailed",
    "TaskHandle",
    "TaskNotFound",
    "TaskRegistry",
    "TaskTimeout",
    "TimeLimitExceeded",
    "UnknownTask",
    "YadtqError",
    "current_task",
    "task",
]


def test_all_is_pinned() -> None:
    assert sorted(yadtq_app.__all__) == PUBLIC
    assert len(yadtq_app.__all__) == len(set(yadtq_app.__all__))


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(yadtq_app, name) is not None


def test_errors_share_one_root() -> None:
    for name in ("ConfigurationError", "InvalidTask", "UnknownTask", "ClientError", "TaskNotFound",
                 "TaskFailed", "TaskTimeout", "Retry", "TimeLimitExceeded", "Conflict", "TaskCancelled"):
        assert issubclass(getattr(yadtq_app, name), yadtq_app.YadtqError), name
    assert issubclass(yadtq_app.UnknownTask, yadtq_app.InvalidTask)


def test_unknown_attribute_raises() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        yadtq_app.no_such_thing  # noqa: B018


def _run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_client_side_does_not_import_faust() -> None:
    assert _run('import sys, yadtq_app; yadtq_app.Client; print("faust" in sys.modules)') == "False"


def test_subprocess_check_can_see_faust() -> None:
    # The same probe reports True once Faust is imported, so the test above can fail.
    assert _run('import sys, yadtq_app, yadtq_app.records; print("faust" in sys.modules)') == "True"
