"""yadtq's one error tree.

::

    YadtqError
    ├── ConfigurationError      bad settings or environment
    ├── BrokerError             the embedded broker could not start or be reached
    ├── RecordTooLarge          a record yadtq would write exceeds the record limit
    ├── RecordWriteError        a record that must be written could not be (fatal)
    ├── InvalidTask             a task message or submission that cannot run
    │   └── UnknownTask         the task name is not registered
    ├── TaskRegistrationError   a bad @task definition
    ├── Retry                   raised by a task body: run me again later
    ├── TimeLimitExceeded       a task ran past its time limit (for ``retry_on``)
    ├── Refused                 the HTTP API refuses a request (raised by views; a JSON error)
    └── ClientError             the HTTP API answered with an error
        ├── TaskNotFound        no task with that id
        ├── Conflict            the task is not in a state that allows the request
        ├── TaskFailed          the task ended ``failed``; carries the remote error
        │   └── TaskCancelled   the task ended ``cancelled``
        └── TaskTimeout         waiting for a result took too long
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = [
    "YadtqError",
    "ConfigurationError",
    "BrokerError",
    "RecordTooLarge",
    "RecordWriteError",
    "InvalidTask",
    "UnknownTask",
    "TaskRegistrationError",
    "Retry",
    "TimeLimitExceeded",
    "Refused",
    "ClientError",
    "TaskNotFound",
    "Conflict",
    "TaskFailed",
    "TaskCancelled",
    "TaskTimeout",
]


class YadtqError(Exception):
    """Root of every error yadtq raises on purpose."""


class ConfigurationError(YadtqError):
    """Settings or environment that yadtq cannot run with."""


class BrokerError(YadtqError):
    """The embedded broker could not be started, or did not answer in time."""


class RecordTooLarge(YadtqError):
    """A record yadtq would write is larger than :attr:`Settings.record_limit`; it is
    refused before it reaches the producer (where it would crash Faust's buffer)."""

    def __init__(self, what: str, size: int, limit: int):
        super().__init__(f"{what} is {size} bytes, over the {limit}-byte record limit")
        self.size = size
        self.limit = limit


class RecordWriteError(YadtqError):
    """A record the worker must write (a task's outcome, a dead letter) could not be
    written. The worker stops rather than acknowledge work it could not account for."""


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


class Retry(YadtqError):
    """Raise from a task body to have it run again after ``delay`` seconds.

    ::

        @task(max_retries=5)
        def fetch(url):
            if rate_limited():
                raise Retry(delay=30)

    A retry counts against the task's ``max_retries``; with none left the task ends
    ``failed`` with this error. ``delay=None`` uses the task's backoff.
    """

    def __init__(self, delay: Optional[float] = None, message: str = "retry requested"):
        if delay is not None and (isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0):
            raise ValueError("Retry(delay=...) must be a non-negative number of seconds")
        super().__init__(message)
        self.delay = float(delay) if delay is not None else None


class TimeLimitExceeded(YadtqError):
    """A task ran past its time limit. List it in ``retry_on`` to retry timeouts."""


class Refused(YadtqError):
    """A request the HTTP API refuses. Raised by a view; the server answers ``status``
    with ``{"error": message, **fields}`` (:func:`yadtq_app.http_server.json_errors`)."""

    def __init__(self, status: int, message: str, /, **fields: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields

    def item(self) -> dict[str, Any]:
        """The refusal as one item of a bulk answer: ``{"error", "code", **fields}``."""
        return {"error": self.message, "code": self.status, **self.fields}


class ClientError(YadtqError):
    """The HTTP API answered with an error status."""

    def __init__(self, message: str, *, status: Optional[int] = None):
        super().__init__(message)
        self.status = status


class TaskNotFound(ClientError):
    """No task with that id was ever submitted."""


class Conflict(ClientError):
    """The task exists but its state does not allow the request (e.g. cancel a finished task)."""


class TaskFailed(ClientError):
    """The task ended ``failed``; ``error`` holds its type, message and traceback."""

    def __init__(self, task_id: str, error: Optional[dict[str, Any]]):
        err = error or {}
        super().__init__(f"task {task_id} failed: {err.get('type', 'Error')}: {err.get('message', '')}")
        self.task_id = task_id
        self.error = err


class TaskCancelled(TaskFailed):
    """The task ended ``cancelled``."""

    def __init__(self, task_id: str, error: Optional[dict[str, Any]]):
        super().__init__(task_id, error)
        message = self.error.get("message")
        self.args = (f"task {task_id} was cancelled" + (f" ({message})" if message else ""),)


class TaskTimeout(ClientError):
    """The task did not finish within the time the caller was willing to wait."""
