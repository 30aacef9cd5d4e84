"""yadtq: a distributed task queue on Faust and Kafka.

The public surface (pinned by ``tests/unit/test_public_api.py``)::

    from yadtq_app import task, Client

``yadtq_app.app`` (the Faust app in :mod:`yadtq_app.application`, loaded by ``faust -A yadtq_app worker``) is imported
lazily so that the client side never imports Faust.
"""

from __future__ import annotations

from typing import Any

from .client import Client, TaskHandle
from .context import TaskContext, current_task
from .errors import (
    ClientError,
    ConfigurationError,
    Conflict,
    InvalidTask,
    Retry,
    TaskCancelled,
    TaskFailed,
    TaskNotFound,
    TaskTimeout,
    TimeLimitExceeded,
    UnknownTask,
    YadtqError,
)
from .registry import TaskRegistry, task
from .settings import Settings

__all__ = [
    "task",
    "current_task",
    "TaskContext",
    "TaskRegistry",
    "Client",
    "TaskHandle",
    "Settings",
    "YadtqError",
    "ConfigurationError",
    "InvalidTask",
    "UnknownTask",
    "ClientError",
    "TaskNotFound",
    "TaskFailed",
    "TaskTimeout",
    "Retry",
    "TimeLimitExceeded",
    "Conflict",
    "TaskCancelled",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # ``faust -A yadtq_app`` looks up ``yadtq_app.app``; build it only then.
    if name == "app":
        from .application import app

        return app
    raise AttributeError(f"module 'yadtq_app' has no attribute {name!r}")
