"""The @task decorator and TaskRegistry, on fresh registries (never default_registry)."""

from __future__ import annotations

import pytest

from yadtq_app.errors import InvalidTask, TaskRegistrationError, UnknownTask
from yadtq_app.registry import TaskDef, TaskRegistry, task


@pytest.fixture
def reg() -> TaskRegistry:
    return TaskRegistry()


def test_sync_task_registers_and_function_is_unchanged(reg: TaskRegistry) -> None:
    def multiply(a, b):
        return a * b

    decorated = task(registry=reg)(multiply)
    assert decorated is multiply and decorated(4, 5) == 20
    td = reg.get("multiply")
    assert td.fn is multiply and td.is_async is False and td.timeout is None
    assert "multiply" in reg and len(reg) == 1


def test_async_task(reg: TaskRegistry) -> None:
    @task(registry=reg, timeout=2.5)
    async def fetch(url):
        return url

    td = reg.get("fetch")
    assert td.is_async is True and td.timeout == 2.5


def test_name_override(reg: TaskRegistry) -> None:
    @task(name="reports.build", registry=reg)
    def build():
        return "ok"

    assert reg.names() == ["reports.build"]
    assert reg.get("reports.build").fn is build
    assert "build" not in reg


def test_duplicate_name_with_other_function_raises(reg: TaskRegistry) -> None:
    def first():
        return 1

    def second():
        return 2

    reg.register(first, name="job")
    with pytest.raises(TaskRegistrationError, match="job"):
        reg.register(second, name="job")
    assert reg.get("job").fn is first


def test_duplicate_name_with_same_qualname_other_function_raises(reg: TaskRegistry) -> None:
    def make(value):
        def job():
            return value
        return job

    reg.register(make(1), name="job")
    with pytest.raises(TaskRegistrationError):
        reg.register(make(2), name="job")


def test_reregistering_same_function_is_fine(reg: TaskRegistry) -> None:
    def job():
        return 1

    task(registry=reg)(job)
    task(registry=reg)(job)
    assert reg.names() == ["job"] and reg.get("job").fn is job


def test_unknown_task_lists_registered_names(reg: TaskRegistry) -> None:
    def beta(): ...
    def alpha(): ...

    reg.register(beta)
    reg.register(alpha)
    with pytest.raises(UnknownTask) as ei:
        reg.get("gamma")
    msg = str(ei.value)
    assert "gamma" in msg and "alpha, beta" in msg
    assert isinstance(ei.value, InvalidTask) and ei.value.reason == "unknown-task"


def test_unknown_task_on_empty_registry(reg: TaskRegistry) -> None:
    with pytest.raises(UnknownTask, match="none"):
        reg.get("anything")


@pytest.mark.parametrize("timeout", [0, -1, -0.5])
def test_invalid_timeout_raises(reg: TaskRegistry, timeout: float) -> None:
    def job(): ...

    with pytest.raises(TaskRegistrationError, match="timeout"):
        task(registry=reg, timeout=timeout)(job)
    assert len(reg) == 0


def test_non_callable_raises(reg: TaskRegistry) -> None:
    with pytest.raises(TaskRegistrationError):
        reg.register(42)  # type: ignore[arg-type]


def test_nameless_callable_needs_name(reg: TaskRegistry) -> None:
    class Callable:
        def __call__(self):
            return 1

    with pytest.raises(TaskRegistrationError, match="name="):
        reg.register(Callable())
    assert reg.register(Callable(), name="obj").name == "obj"


def test_iteration_is_sorted_by_name(reg: TaskRegistry) -> None:
    for n in ("c", "a", "b"):
        reg.register(lambda: None, name=n)
    assert [t.name for t in reg] == ["a", "b", "c"] == reg.names()


def test_load_modules_missing_module(reg: TaskRegistry) -> None:
    with pytest.raises(TaskRegistrationError, match="yadtq_no_such_module_xyz"):
        reg.load_modules(["json", "yadtq_no_such_module_xyz"])


def test_load_modules_imports_existing_modules(reg: TaskRegistry) -> None:
    assert reg.load_modules(["json", "os.path"]) is None
    assert len(reg) == 0


def test_check_arguments() -> None:
    def f(a, b, *, c=1):
        return a

    td = TaskDef(name="f", fn=f)
    td.check_arguments([1, 2], {})
    td.check_arguments([1], {"b": 2, "c": 3})
    for args, kwargs in [([1], {}), ([1, 2, 3], {}), ([1, 2], {"d": 4}), ([1, 2], {"a": 1})]:
        with pytest.raises(TypeError):
            td.check_arguments(args, kwargs)
