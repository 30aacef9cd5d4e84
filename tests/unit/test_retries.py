"""How an attempt ends (yadtq_app.state.end_of_attempt): the retry decision, without a broker."""

from __future__ import annotations

import random
from typing import Any, Optional

import pytest

from yadtq_app.execution import Outcome
from yadtq_app.registry import TaskDef
from yadtq_app.settings import Settings
from yadtq_app.state import AttemptEnd, end_of_attempt, max_retries_of

#: No jitter, so every delay is exact.
SETTINGS = Settings(default_max_retries=0, retry_backoff=1.0, retry_backoff_max=300.0, retry_jitter=0.0)


def task(**options: Any) -> TaskDef:
    return TaskDef(name="t", fn=lambda: None, **options)


def failure(error_type: str = "ValueError", *, mro: tuple[str, ...] = ("builtins.ValueError", "builtins.Exception"),
            retry: bool = False, retry_delay: Optional[float] = None) -> Outcome:
    return Outcome(ok=False, error={"type": error_type, "message": "boom", "traceback": None}, error_types=mro,
                   retry=retry, retry_delay=retry_delay)


def end(outcome: Optional[Outcome], taskdef: TaskDef, options: Optional[dict[str, Any]] = None, *,
        retries_used: int = 0, settings: Settings = SETTINGS) -> AttemptEnd:
    return end_of_attempt(outcome, taskdef, options or {}, retries_used=retries_used, settings=settings)


def test_a_cancelled_attempt_ends_cancelled_whatever_its_retries() -> None:
    assert end(None, task(max_retries=5)) == AttemptEnd("cancelled")


def test_a_success_ends_the_task() -> None:
    assert end(Outcome(ok=True, result=7), task(max_retries=5)) == AttemptEnd("success")


def test_max_retries_comes_from_the_submission_then_the_task_then_the_worker() -> None:
    assert max_retries_of(task(max_retries=3), {"max_retries": 1}, 9) == 1
    assert max_retries_of(task(max_retries=3), {"max_retries": 0}, 9) == 0  # 0 is a value, not "unset"
    assert max_retries_of(task(max_retries=3), {}, 9) == 3
    assert max_retries_of(task(max_retries=0), {}, 9) == 0
    assert max_retries_of(task(), {"max_retries": None}, 9) == 9
    assert max_retries_of(task(), {"max_retries": "2"}, 9) == 2  # as JSON may carry it


def test_the_submissions_max_retries_overrides_the_tasks() -> None:
    assert end(failure(), task(max_retries=0), {"max_retries": 2}).status == "retrying"
    assert end(failure(), task(max_retries=3), {"max_retries": 0}) == AttemptEnd("failed", 0)
    assert end(failure(), task()).status == "failed"  # the worker's default: no retries
    assert end(failure(), task(), settings=Settings(default_max_retries=1, retry_jitter=0.0)).status == "retrying"


@pytest.mark.parametrize("retries_used, status", [(0, "retrying"), (1, "retrying"), (2, "failed"), (5, "failed")])
def test_a_failure_is_retried_until_the_retries_are_used_up(retries_used: int, status: str) -> None:
    assert end(failure(), task(max_retries=2), retries_used=retries_used) == \
        (AttemptEnd(status, 2, 2.0 ** retries_used) if status == "retrying" else AttemptEnd(status, 2))


@pytest.mark.parametrize("error_type", ["InvalidArguments", "ResultNotSerializable", "ResultTooLarge"])
def test_a_failure_that_would_fail_again_is_not_retried(error_type: str) -> None:
    taskdef = task(max_retries=5)
    assert end(failure(error_type), taskdef) == AttemptEnd("failed", 5)
    assert end(failure(error_type, retry=True), taskdef).status == "failed"  # not even when asked to
    assert end(failure("ValueError"), taskdef).status == "retrying"  # control: a plain error is


def test_retry_on_limits_the_errors_retried_unless_the_task_asks_for_a_retry() -> None:
    taskdef = task(max_retries=3, retry_on=(ConnectionError,))
    assert end(failure(), taskdef) == AttemptEnd("failed", 3)
    refused = failure("ConnectionRefusedError", mro=("builtins.ConnectionRefusedError", "builtins.ConnectionError"))
    assert end(refused, taskdef).status == "retrying"
    assert end(failure(retry=True, retry_delay=7.5), taskdef) == AttemptEnd("retrying", 3, 7.5)


def test_the_delay_is_the_tasks_backoff_else_the_workers() -> None:
    assert end(failure(), task(max_retries=9), retries_used=3).delay == 8.0  # 1 s doubled three times
    assert end(failure(), task(max_retries=9, retry_backoff=0.5), retries_used=3).delay == 4.0
    assert end(failure(), task(max_retries=9, retry_backoff_max=5.0), retries_used=3).delay == 5.0
    assert end(failure(retry_delay=0.0), task(max_retries=9), retries_used=3).delay == 0.0  # asked: no backoff


def test_jitter_comes_from_the_given_random_source() -> None:
    jittery = Settings(retry_backoff=1.0, retry_jitter=0.5)
    delays = [end_of_attempt(failure(), task(max_retries=9), {}, retries_used=1, settings=jittery,
                             rng=random.Random(seed)).delay for seed in (1, 1, 2)]
    assert delays[0] == delays[1] != delays[2]
    assert all(2.0 <= d <= 3.0 for d in delays)
