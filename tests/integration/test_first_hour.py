"""What a new user meets in the first hour: task modules, submit-time checks, ports,
data folders and a broker that goes away (issue "The first hour")."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

ONLY_TEST_TASKS = {"YADTQ_TASK_MODULES": "tests.support.tasks"}


def post_task(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/tasks", json=body, timeout=10)


def test_only_the_listed_task_modules_register(cluster_factory: Any) -> None:
    cluster = cluster_factory(extra_env=ONLY_TEST_TASKS).start(1)
    url = cluster.workers[0].url
    r = post_task(url, {"task": "multiply", "args": [4, 5]})
    assert r.status_code == 400, r.text
    assert r.json()["reason"] == "unknown-task"
    assert post_task(url, {"task": "tests.concat", "args": ["a", "b"]}).status_code == 202


def test_arguments_are_bound_at_submit(shared_cluster: Any) -> None:
    url = shared_cluster.workers[0].url
    r = post_task(url, {"task": "multiply", "args": [4]})
    assert r.status_code == 400, r.text
    assert r.json()["reason"] == "bad-arguments"
    assert "missing a required argument: 'b'" in r.json()["error"]
    r = post_task(url, {"task": "tests.concat", "args": ["a"], "kwargs": {"c": 1}})
    assert r.status_code == 400 and "unexpected keyword argument 'c'" in r.json()["error"], r.text
    assert post_task(url, {"task": "tests.concat", "args": ["a"]}).status_code == 202
