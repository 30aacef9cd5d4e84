"""Tasks only the tests register (``YADTQ_TASK_MODULES`` includes this module)."""

from __future__ import annotations

from yadtq_app import task


@task(name="tests.fail")
def fail(message: str) -> None:
    """Always raises: a task failure, recorded in the status."""
    raise RuntimeError(message)


@task(name="tests.concat")
def concat(a: str, b: str = "") -> str:
    return a + b


@task(name="tests.unserializable")
def unserializable() -> object:
    return object()


@task(name="tests.sleep_until")
async def sleep_until(unix_time: float) -> float:
    """Finish at an absolute time: many of these finish together, so their status
    rows reach the changelog in multi-record batches."""
    import asyncio
    import time

    await asyncio.sleep(max(0.0, unix_time - time.time()))
    return unix_time
