"""Task registration: the ``@task`` decorator and the registry workers run from.

Only functions registered here ever run: a task message naming anything else fails
with :class:`~yadtq_app.errors.UnknownTask`. This module imports no Faust app, so it
is usable (and tested) without Kafka.

::

    from yadtq_app import task

    @task
    def multiply(a, b):
        return a * b

    @task(name="reports.build", timeout=60)
    async def build_report(day):
        ...

    @task(max_retries=5, retry_backoff=2.0, retry_on=(ConnectionError,))
    def fetch(url):
        ...

    @task(process=True, timeout=30)     # CPU-bound: run in a process, killed at its limit
    def crunch(n):
        ...

Options: ``timeout`` (seconds; default ``YADTQ_DEFAULT_TIMEOUT``), ``max_retries``
(default ``YADTQ_DEFAULT_MAX_RETRIES``), ``retry_backoff`` / ``retry_backoff_max``
(seconds; see :func:`yadtq_app.state.backoff_delay`), ``retry_on`` (exception classes
that lead to a retry; by default any exception does once ``max_retries`` > 0 — list
:class:`~yadtq_app.errors.TimeLimitExceeded` to retry timeouts when giving
``retry_on``), and ``process`` (run a sync function in the worker's process pool, where
the time limit kills it; the function must be importable at module level).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar, overload

from .errors import TaskRegistrationError, UnknownTask

__all__ = ["TaskDef", "TaskRegistry", "task", "default_registry", "names_digest", "describe_task", "effective_options"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class TaskDef:
    """A registered task: its name, function and execution options."""

    name: str
    fn: Callable[..., Any]
    #: Time limit in seconds; ``None`` means the worker's default.
    timeout: Optional[float] = None
    #: Retries after a failure; ``None`` means the worker's default.
    max_retries: Optional[int] = None
    retry_backoff: Optional[float] = None
    retry_backoff_max: Optional[float] = None
    #: Exception classes that lead to a retry; ``None``: any exception.
    retry_on: Optional[tuple[type[BaseException], ...]] = None
    #: Run in the worker's process pool (sync functions only).
    process: bool = False

    def retries_on(self, error_types: tuple[str, ...]) -> bool:
        """Whether a failure whose exception classes (qualified names, MRO) are
        ``error_types`` is one this task retries on."""
        if self.retry_on is None:
            return True
        return any(f"{cls.__module__}.{cls.__qualname__}" in error_types for cls in self.retry_on)

    @functools.cached_property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def check_arguments(self, args: list[Any], kwargs: dict[str, Any]) -> None:
        """Raise ``TypeError`` if the function cannot be called with these arguments."""
        if not kwargs and len(args) == self._plain_arity:
            return  # the common case, without Signature.bind's cost
        self._signature.bind(*args, **kwargs)

    @functools.cached_property
    def _plain_arity(self) -> int:
        """How many positional arguments the function takes when every parameter is a
        plain one without a default (-1 otherwise: ask :meth:`inspect.Signature.bind`)."""
        params = self._signature.parameters.values()
        plain = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        if all(p.kind in plain and p.default is inspect.Parameter.empty for p in params):
            return len(params)
        return -1

    @functools.cached_property
    def _signature(self) -> inspect.Signature:
        return inspect.signature(self.fn)


class TaskRegistry:
    """Name → :class:`TaskDef`. One per process is enough: :data:`default_registry`."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskDef] = {}

    def register(self, fn: Callable[..., Any], *, name: Optional[str] = None,
                 timeout: Optional[float] = None, max_retries: Optional[int] = None,
                 retry_backoff: Optional[float] = None, retry_backoff_max: Optional[float] = None,
                 retry_on: Optional[Iterable[type[BaseException]]] = None, process: bool = False) -> TaskDef:
        """Register ``fn`` under ``name`` (its ``__name__`` by default); options in the module docs."""
        if not callable(fn):
            raise TaskRegistrationError(f"{fn!r} is not callable")
        task_name = name or getattr(fn, "__name__", None)
        if not task_name or not isinstance(task_name, str):
            raise TaskRegistrationError(f"cannot tell the name of {fn!r}; pass name=")
        _check_limits(task_name, timeout, max_retries, retry_backoff, retry_backoff_max)
        retry_types = None
        if retry_on is not None:
            retry_types = tuple(retry_on)
            if not all(isinstance(c, type) and issubclass(c, BaseException) for c in retry_types):
                raise TaskRegistrationError(f"task {task_name!r}: retry_on must list exception classes")
        if process:
            _check_process_target(task_name, fn)
        existing = self._tasks.get(task_name)
        if existing is not None and existing.fn is not fn and not _same_definition(existing.fn, fn):
            raise TaskRegistrationError(
                f"task name {task_name!r} is already registered to {_qualname(existing.fn)}"
            )
        taskdef = TaskDef(name=task_name, fn=fn, timeout=timeout, max_retries=max_retries,
                          retry_backoff=retry_backoff, retry_backoff_max=retry_backoff_max, retry_on=retry_types,
                          process=process)
        self._tasks[task_name] = taskdef
        return taskdef

    def get(self, name: str) -> TaskDef:
        """The task called ``name``; :class:`UnknownTask` if there is none."""
        try:
            return self._tasks[name]
        except KeyError:
            known = ", ".join(sorted(self._tasks)) or "none"
            raise UnknownTask(f"unknown task {name!r}; registered: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[TaskDef]:
        return iter(sorted(self._tasks.values(), key=lambda t: t.name))

    def __len__(self) -> int:
        return len(self._tasks)

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def digest(self) -> str:
        """A short digest of the set of task names: equal on workers that register the same tasks."""
        return names_digest(self._tasks)

    def load_modules(self, modules: Iterable[str]) -> None:
        """Import modules so their ``@task`` functions register."""
        for mod in modules:
            try:
                importlib.import_module(mod)
            except ImportError as exc:
                raise TaskRegistrationError(f"cannot import task module {mod!r}: {exc}") from exc


def _check_limits(task_name: str, timeout: Optional[float], max_retries: Optional[int],
                  retry_backoff: Optional[float], retry_backoff_max: Optional[float]) -> None:
    """Raise :class:`TaskRegistrationError` if a time limit or retry option is out of range."""
    if timeout is not None and timeout <= 0:
        raise TaskRegistrationError(f"task {task_name!r}: timeout must be positive")
    if max_retries is not None and (not isinstance(max_retries, int) or max_retries < 0):
        raise TaskRegistrationError(f"task {task_name!r}: max_retries must be a non-negative integer")
    for label, value in (("retry_backoff", retry_backoff), ("retry_backoff_max", retry_backoff_max)):
        if value is not None and value < 0:
            raise TaskRegistrationError(f"task {task_name!r}: {label} must not be negative")


def _check_process_target(task_name: str, fn: Callable[..., Any]) -> None:
    """Raise :class:`TaskRegistrationError` unless ``fn`` can run in a process: a sync
    function that a process imports by its module-level name."""
    if inspect.iscoroutinefunction(fn):
        raise TaskRegistrationError(f"task {task_name!r}: process=True is for sync functions")
    qual = getattr(fn, "__qualname__", "")
    if "<" in qual or "." in qual:
        raise TaskRegistrationError(
            f"task {task_name!r}: process=True needs a module-level function (a process imports it by name)")


def effective_options(taskdef: TaskDef, settings: Any) -> dict[str, Any]:
    """``timeout`` and ``max_retries`` in force for ``taskdef``: the task's own, else the
    worker's defaults from ``settings`` (:class:`~yadtq_app.settings.Settings`)."""
    return {
        "timeout": taskdef.timeout if taskdef.timeout is not None else settings.default_timeout,
        "max_retries": taskdef.max_retries if taskdef.max_retries is not None else settings.default_max_retries,
    }


def describe_task(taskdef: TaskDef, settings: Any) -> dict[str, Any]:
    """A task as JSON, with the options in force (:func:`effective_options`)."""
    return {
        "name": taskdef.name,
        "async": taskdef.is_async,
        "process": taskdef.process,
        **effective_options(taskdef, settings),
        "retry_on": None if taskdef.retry_on is None
        else [f"{c.__module__}.{c.__qualname__}" for c in taskdef.retry_on],
        "doc": (inspect.getdoc(taskdef.fn) or "").split("\n")[0],
    }


def names_digest(names: Iterable[str]) -> str:
    """12 hex digits of SHA-256 over the sorted names, one a line."""
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:12]


def _same_definition(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    """The same ``def`` imported twice (a module loaded again), not two different functions.

    Lambdas and functions made inside other functions share qualnames, so they never count.
    """
    qual = _qualname(a)
    if qual != _qualname(b) or "<lambda>" in qual or "<locals>" in qual:
        return False
    code_a, code_b = getattr(a, "__code__", None), getattr(b, "__code__", None)
    return code_a is not None and code_b is not None and code_a.co_filename == code_b.co_filename


def _qualname(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


#: The registry ``@task`` writes to and workers read from.
default_registry = TaskRegistry()


@overload
def task(fn: F) -> F: ...
@overload
def task(*, name: Optional[str] = None, timeout: Optional[float] = None, max_retries: Optional[int] = None,
         retry_backoff: Optional[float] = None, retry_backoff_max: Optional[float] = None,
         retry_on: Optional[Iterable[type[BaseException]]] = None, process: bool = False,
         registry: Optional[TaskRegistry] = None) -> Callable[[F], F]: ...


def task(fn: Optional[F] = None, *, name: Optional[str] = None, timeout: Optional[float] = None,
         max_retries: Optional[int] = None, retry_backoff: Optional[float] = None,
         retry_backoff_max: Optional[float] = None, retry_on: Optional[Iterable[type[BaseException]]] = None,
         process: bool = False, registry: Optional[TaskRegistry] = None) -> Any:
    """Register a sync or async function as a task; the function itself is unchanged."""
    reg = registry if registry is not None else default_registry

    def decorate(f: F) -> F:
        reg.register(f, name=name, timeout=timeout, max_retries=max_retries, retry_backoff=retry_backoff,
                     retry_backoff_max=retry_backoff_max, retry_on=retry_on, process=process)
        return f

    return decorate(fn) if fn is not None else decorate
