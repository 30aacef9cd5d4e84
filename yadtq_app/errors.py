"""yadtq's one error tree.

::

    YadtqError
    ├── ConfigurationError      bad settings or environment
    ├── BrokerError             the embedded broker could not start or be reached
    ├── InvalidTask             a task message or submission that cannot run
    │   └── UnknownTask         the task name is not registered
    ├── TaskRegistrationError   a bad @task definition
    └── ClientError             the HTTP API answered with an error
        ├── TaskNotFound        no task with that id
        ├── TaskFailed          the task ended ``failed``; carries the remote error
        └── TaskTimeout         waiting for a result took too long
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = [
    "YadtqError",
    "ConfigurationError",
    "BrokerError",
    "InvalidTask",
    "UnknownTask",
    "TaskRegistrationError",
    "ClientError",
    "TaskNotFound",
    "TaskFailed",
    "TaskTimeout",
]


class YadtqError(Exception):
    """Root of every error yadtq raises on purpose."""


class ConfigurationError(YadtqError):
    """Settings or environment that yadtq cannot run with."""


class BrokerError(YadtqError):
    """The embedded broker could not be started, or did not answer in time."""


class InvalidTask(YadtqError):
    """A task submission or task message that is not a valid task."""

    #: Short machine-readable reason, used as a counter name (e.g. ``not-json``).
    reason: str = "invalid"

    def __init__(self, message: str, *, reason: Optional[str] = None, task_id: Optional[str] = None):
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        self.task_id = task_id


class UnknownTask(InvalidTask):
    """The task name is not registered on this worker."""

    reason = "unknown-task"


class TaskRegistrationError(YadtqError):
    """A ``@task`` definition that cannot be registered."""


class ClientError(YadtqError):
    """The HTTP API answered with an error status."""

    def __init__(self, message: str, *, status: Optional[int] = None):
        super().__init__(message)
        self.status = status


class TaskNotFound(ClientError):
    """No task with that id was ever submitted."""


class TaskFailed(ClientError):
    """The task ended ``failed``; ``error`` holds its type, message and traceback."""

    def __init__(self, task_id: str, error: Optional[dict[str, Any]]):
        err = error or {}
        super().__init__(f"task {task_id} failed: {err.get('type', 'Error')}: {err.get('message', '')}")
        self.task_id = task_id
        self.error = err


class TaskTimeout(ClientError):
    """The task did not finish within the time the caller was willing to wait."""
