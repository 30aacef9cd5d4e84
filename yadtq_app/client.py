"""The Python client: submit tasks and read their status over HTTP. No Faust import.

::

    from yadtq_app import Client

    c = Client("http://127.0.0.1:6066")
    h = c.submit("multiply", 4, 5)
    print(h.id, h.status(), h.result(timeout=10))   # ... 'queued' 20

    h = c.send_task("multiply", [4, 5], countdown=30, max_retries=3, timeout=10)
    h.cancel()
"""

from __future__ import annotations

import datetime
import time
from typing import Any, Callable, Iterable, Optional, Sequence, TypeVar, Union

import httpx

from .errors import (
    ClientError,
    Conflict,
    InvalidTask,
    TaskCancelled,
    TaskFailed,
    TaskNotFound,
    TaskTimeout,
    UnknownTask,
)
from .ids import quote_id

__all__ = ["Client", "TaskHandle"]

T = TypeVar("T")

FINISHED = ("success", "failed", "cancelled")
#: Ids per ``POST /tasks/status`` request (the server takes at most 1,000).
BATCH_IDS = 1000
#: The longest one ``GET /tasks/{id}?wait=`` of :meth:`TaskHandle.wait` holds (s).
LONG_POLL_SECONDS = 10.0


def _poll(step: Callable[[], Optional[T]], *, timeout: float, poll: float, timed_out: Callable[[], str]) -> T:
    """Call ``step`` until it returns something, waiting ``poll`` s at first and up to
    0.5 s between calls (a 503, a worker rebalancing, counts as nothing yet);
    :class:`TaskTimeout` with ``timed_out()`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    delay = poll
    while True:
        try:
            value = step()
        except ClientError as exc:
            if exc.status != 503:
                raise
            value = None
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            raise TaskTimeout(timed_out())
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 0.5)


class TaskHandle:
    """A submitted task: its id, and ways to ask about it."""

    def __init__(self, client: "Client", task_id: str) -> None:
        self.client = client
        self.id = task_id

    def __repr__(self) -> str:
        return f"<TaskHandle {self.id}>"

    def info(self, *, wait: Optional[float] = None) -> dict[str, Any]:
        """The whole status row (``GET /tasks/{id}``); with ``wait``, once the task is
        final or after ``wait`` seconds, whichever comes first. :class:`TaskNotFound`
        only for a task that does not exist (never submitted, or expired): the workers
        find a task from the moment its submission was accepted (or its record written
        to the task topic)."""
        return self.client.get_task(self.id, wait=wait)

    def status(self) -> str:
        """``queued``, ``scheduled``, ``processing``, ``retrying``, ``success``, ``failed`` or ``cancelled``."""
        return str(self.info()["status"])

    def progress(self) -> Optional[dict[str, Any]]:
        """The running attempt's last progress report (``fraction``, ``message``, ``at``), if any."""
        return self.info().get("progress")

    def cancel(self) -> dict[str, Any]:
        """Cancel the task (``POST /tasks/{id}/cancel``); :class:`Conflict` if it already finished."""
        return self.client.cancel(self.id)

    def retry(self) -> dict[str, Any]:
        """Run a failed or cancelled task again (``POST /tasks/{id}/retry``)."""
        return self.client.retry(self.id)

    def wait(self, timeout: float = 30.0, poll: float = 0.02) -> dict[str, Any]:
        """Wait until the task finishes; its status row. :class:`TaskTimeout` if it does not.

        Each request is a long poll (``?wait=``): the worker holding the task answers as
        soon as it writes the final row. ``poll`` is the pause before asking again
        after an answer that was not final (a worker rebalancing, say)."""
        last: dict[str, Any] = {}
        deadline = time.monotonic() + timeout

        def finished() -> Optional[dict[str, Any]]:
            remaining = min(deadline - time.monotonic(), LONG_POLL_SECONDS)
            last.update(self.info(wait=remaining if remaining >= 0.001 else None))
            return last if last.get("status") in FINISHED else None

        return _poll(finished, timeout=timeout, poll=poll,
                     timed_out=lambda: f"task {self.id} did not finish within {timeout:g} s "
                                       f"(status {last.get('status', 'unknown')})")

    def result(self, timeout: float = 30.0) -> Any:
        """The task's result; :class:`TaskFailed` if it failed (:class:`TaskCancelled` if
        cancelled), :class:`TaskTimeout` if it takes too long."""
        info = self.wait(timeout)
        if info["status"] == "cancelled":
            raise TaskCancelled(self.id, info.get("error"))
        if info["status"] == "failed":
            raise TaskFailed(self.id, info.get("error"))
        return info.get("result")


class Client:
    """HTTP client for one worker (any worker answers for the whole cluster)."""

    def __init__(self, url: str = "http://127.0.0.1:6066", *, timeout: float = 10.0,
                 transport: Optional[httpx.BaseTransport] = None) -> None:
        # "localhost:6066" means http://localhost:6066 (httpx would call "localhost" the scheme).
        self.url = (url if "://" in url else f"http://{url}").rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def submit(self, task: str, *args: Any, task_id: Optional[str] = None, **kwargs: Any) -> TaskHandle:
        """Submit ``task(*args, **kwargs)``; returns at once with a :class:`TaskHandle`."""
        body: dict[str, Any] = {"task": task, "args": list(args), "kwargs": kwargs}
        if task_id is not None:
            body["task-id"] = task_id
        return self.submit_json(body)

    def send_task(self, task: str, args: Sequence[Any] = (), kwargs: Optional[dict[str, Any]] = None, *,
                  task_id: Optional[str] = None, countdown: Optional[float] = None,
                  eta: Union[datetime.datetime, float, str, None] = None, max_retries: Optional[int] = None,
                  timeout: Optional[float] = None, ordering_key: Optional[str] = None) -> TaskHandle:
        """Submit with per-submission options: start no earlier than ``countdown`` seconds
        from now or than ``eta`` (an aware datetime, ISO 8601 text or Unix seconds), and
        override the task's ``max_retries`` and ``timeout``. Tasks with the same
        ``ordering_key`` run one at a time, in submission order."""
        body: dict[str, Any] = {"task": task, "args": list(args), "kwargs": dict(kwargs or {})}
        if isinstance(eta, datetime.datetime):
            eta = eta.isoformat()
        for name, value in (("task-id", task_id), ("countdown", countdown), ("eta", eta),
                            ("max_retries", max_retries), ("timeout", timeout), ("ordering_key", ordering_key)):
            if value is not None:
                body[name] = value
        return self.submit_json(body)

    def submit_json(self, body: dict[str, Any]) -> TaskHandle:
        """Submit a task given in the wire format (``{"task-id", "task", "args", "kwargs"}``)."""
        data = self._request("POST", "/tasks", json=body)
        return TaskHandle(self, data["task-id"])

    def submit_many(self, bodies: Iterable[dict[str, Any]], *, chunk: int = 1000) -> list[dict[str, Any]]:
        """Submit many tasks given in the wire format, ``chunk`` (at most 1,000) per
        request (a bulk ``POST /tasks``); one answer per task, in order: ``{"task-id",
        "status"}`` (with ``"duplicate": true`` for an id that exists), or ``{"error",
        "reason", "code"}`` for a task refused (the others are submitted all the same)."""
        if not 1 <= chunk <= 1000:
            raise ValueError("chunk must be between 1 and 1000")
        answers: list[dict[str, Any]] = []
        batch: list[dict[str, Any]] = []
        for body in bodies:
            batch.append(body)
            if len(batch) == chunk:
                answers.extend(self._request("POST", "/tasks", json=batch, answers_in="tasks")["tasks"])
                batch = []
        if batch:
            answers.extend(self._request("POST", "/tasks", json=batch, answers_in="tasks")["tasks"])
        return answers

    def task(self, task_id: str) -> TaskHandle:
        """A handle for a task submitted elsewhere."""
        return TaskHandle(self, task_id)

    def get_task(self, task_id: str, *, wait: Optional[float] = None) -> dict[str, Any]:
        """The status row of ``task_id``; :class:`TaskNotFound` if there is none. With
        ``wait`` (seconds, at most 60), the worker answers once the task is final, or
        after ``wait`` seconds with the row as it is then."""
        row: dict[str, Any]
        if wait is None:
            row = self._request("GET", f"/tasks/{quote_id(task_id)}")
        else:
            read = self._http.timeout.read
            row = self._request("GET", f"/tasks/{quote_id(task_id)}", params={"wait": f"{max(wait, 0.001):.3f}"},
                                timeout=read + wait if read is not None else None)
        return row

    def statuses(self, task_ids: Sequence[str]) -> dict[str, Optional[dict[str, Any]]]:
        """The status rows of many tasks at once (``POST /tasks/status``, up to
        :data:`BATCH_IDS` ids per request): id → row, or ``None`` for an id never
        submitted. Ids whose owner is rebalancing are asked again; :class:`ClientError`
        if some still cannot be answered."""
        out: dict[str, Optional[dict[str, Any]]] = {}
        ids = list(dict.fromkeys(task_ids))
        for start in range(0, len(ids), BATCH_IDS):
            todo = ids[start:start + BATCH_IDS]
            for attempt in range(21):
                data = self._request("POST", "/tasks/status", json={"ids": todo})
                out.update(data["tasks"])
                todo = data["unavailable"]
                if not todo:
                    break
                time.sleep(min(0.05 * (attempt + 1), 0.5))
            if todo:
                raise ClientError(f"no answer for {len(todo)} task(s) (their workers are rebalancing); retry",
                                  status=503)
        return out

    def wait_all(self, task_ids: Sequence[str], timeout: float = 60.0, poll: float = 0.02) -> dict[str, dict[str, Any]]:
        """Wait until every task finishes; id → status row. :class:`TaskTimeout` if some do not.

        Asks only about the tasks not yet finished, in batches; an id with no row yet
        counts as queued (its submission may not be recorded yet)."""
        done: dict[str, dict[str, Any]] = {}
        pending = list(dict.fromkeys(task_ids))

        def all_finished() -> Optional[dict[str, dict[str, Any]]]:
            nonlocal pending
            for task_id, row in self.statuses(pending).items():
                if row is not None and row.get("status") in FINISHED:
                    done[task_id] = row
            pending = [t for t in pending if t not in done]
            return done if not pending else None

        return _poll(all_finished, timeout=timeout, poll=poll,
                     timed_out=lambda: f"{len(pending)} of {len(done) + len(pending)} tasks did not finish "
                                       f"within {timeout:g} s (e.g. {pending[0]})")

    def cancel(self, task_id: str) -> dict[str, Any]:
        """Ask to cancel ``task_id``: a waiting task never starts, a running one is cancelled."""
        answer: dict[str, Any] = self._request("POST", f"/tasks/{quote_id(task_id)}/cancel")
        return answer

    def retry(self, task_id: str) -> dict[str, Any]:
        """Run a failed or cancelled (e.g. dead-lettered) task again."""
        answer: dict[str, Any] = self._request("POST", f"/tasks/{quote_id(task_id)}/retry")
        return answer

    def workers(self) -> list[dict[str, Any]]:
        """Every worker seen recently (``GET /workers``)."""
        rows: list[dict[str, Any]] = self._request("GET", "/workers")["workers"]
        return rows

    def registry(self) -> dict[str, Any]:
        """The tasks the worker at this URL registers, with their options (``GET /registry``)."""
        answer: dict[str, Any] = self._request("GET", "/registry")
        return answer

    def dead_letters(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Task messages that will never run (``GET /dead-letters``)."""
        rows: list[dict[str, Any]] = self._request("GET", f"/dead-letters?limit={limit}")["dead_letters"]
        return rows

    def _request(self, method: str, path: str, *, json: Any = None, params: Optional[dict[str, str]] = None,
                 timeout: Optional[float] = None, retries: int = 20, answers_in: Optional[str] = None) -> Any:
        extra: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
        for attempt in range(retries + 1):
            try:
                resp = self._http.request(method, path, json=json, params=params, **extra)
            except httpx.HTTPError as exc:
                raise ClientError(f"cannot reach yadtq at {self.url}: {exc}") from None
            if resp.status_code == 503 and (method == "GET" or path != "/tasks") and attempt < retries:
                time.sleep(min(0.05 * (attempt + 1), 0.5))
                continue
            break
        try:
            data = resp.json()
        except ValueError:
            data = {"error": resp.text}
        if resp.status_code < 400 or (answers_in is not None and isinstance(data, dict) and answers_in in data):
            return data
        message = data.get("error", resp.reason_phrase) if isinstance(data, dict) else str(data)
        if resp.status_code == 404:
            raise TaskNotFound(message, status=404)
        if resp.status_code == 409:
            raise Conflict(message, status=409)
        if resp.status_code == 400 and isinstance(data, dict) and data.get("reason") == "unknown-task":
            raise UnknownTask(message)
        if resp.status_code == 400:
            raise InvalidTask(message, reason=data.get("reason") if isinstance(data, dict) else None)
        raise ClientError(f"{method} {path}: HTTP {resp.status_code}: {message}", status=resp.status_code)
