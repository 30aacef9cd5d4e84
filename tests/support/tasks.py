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


@task(name="tests.ledgered")
async def ledgered(seconds: float, value: int = 0) -> int:
    """Sleep ``seconds``, writing start and end lines to the ledger file
    (``YADTQ_TEST_LEDGER``): the record of every execution the failover tests check."""
    import asyncio

    from yadtq_app import current_task

    ctx = current_task()
    _ledger("start", ctx)
    await asyncio.sleep(seconds)
    _ledger("end", ctx)
    return value


@task(name="tests.ledgered_sync")
def ledgered_sync(seconds: float, value: int = 0) -> int:
    """Like ``tests.ledgered``, in a thread."""
    import time

    from yadtq_app import current_task

    ctx = current_task()
    _ledger("start", ctx)
    time.sleep(seconds)
    _ledger("end", ctx)
    return value


def _ledger(what: str, ctx: object) -> None:
    import json
    import os
    import time

    path = os.environ.get("YADTQ_TEST_LEDGER")
    if not path:
        return
    line = json.dumps({"event": what, "id": ctx.id, "attempt": ctx.attempt,  # type: ignore[attr-defined]
                       "worker": ctx.worker, "pid": os.getpid(), "t": time.time()}) + "\n"  # type: ignore[attr-defined]
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
