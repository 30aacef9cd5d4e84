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
    # A start is dated when the worker began the attempt, not when this line runs: a worker
    # frozen (SIGSTOP) between the two had the attempt in flight at the fault.
    now = time.time()
    at = ctx.started_at if what == "start" and ctx.started_at else now  # type: ignore[attr-defined]
    line = json.dumps({"event": what, "id": ctx.id, "attempt": ctx.attempt,  # type: ignore[attr-defined]
                       "worker": ctx.worker, "pid": os.getpid(), "t": at, "ran_at": now}) + "\n"  # type: ignore[attr-defined]
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@task(name="tests.poison", max_retries=3, retry_backoff=0.3, retry_backoff_max=5)
async def poison(message: str = "poison") -> None:
    """Always raises, after writing its attempt to the ledger: dead-lettered after 4 attempts."""
    from yadtq_app import current_task

    _ledger("start", current_task())
    raise RuntimeError(message)


@task(name="tests.fail_until_file", max_retries=0)
def fail_until_file(path: str) -> str:
    """Fails until ``path`` exists, then succeeds: for resubmitting a failed task."""
    import os

    from yadtq_app import current_task

    _ledger("start", current_task())
    if not os.path.exists(path):
        raise RuntimeError(f"{path} does not exist yet")
    return "ok"


@task(name="tests.retry_until", max_retries=5)
async def retry_until(attempts: int, delay: float = 0.2) -> int:
    """Asks to be retried (``Retry(delay)``) until its attempt number reaches ``attempts``."""
    from yadtq_app import Retry, current_task

    ctx = current_task()
    _ledger("start", ctx)
    if ctx.attempt < attempts:
        raise Retry(delay=delay)
    return ctx.attempt


@task(name="tests.spin", process=True)
def spin(seconds: float) -> int:
    """CPU-bound and deaf to its time limit: only killing its process stops it."""
    import os
    import time

    from yadtq_app import current_task

    _ledger("start", current_task())
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    _ledger("end", current_task())
    return os.getpid()


@task(name="tests.slow_sync", retry_on=())
def slow_sync(seconds: float) -> float:
    """A thread task that sleeps; never retried (``retry_on=()``)."""
    import time

    time.sleep(seconds)
    return seconds


@task(name="tests.progress_until_file")
async def progress_until_file(path: str) -> str:
    """Reports progress, then waits for ``path`` to exist."""
    import asyncio
    import os

    from yadtq_app import current_task

    ctx = current_task()
    _ledger("start", ctx)
    ctx.progress(0.25, "started")
    ctx.progress(0.5, "halfway")
    while not os.path.exists(path):
        await asyncio.sleep(0.02)
    ctx.progress(1.0, "done")
    return "done"


@task(name="tests.ledgered_wait_file")
async def ledgered_wait_file(path: str) -> str:
    """Starts (in the ledger), then waits for ``path``: stays running until told."""
    import asyncio
    import os

    from yadtq_app import current_task

    _ledger("start", current_task())
    try:
        while not os.path.exists(path):
            await asyncio.sleep(0.02)
    except asyncio.CancelledError:
        _ledger("cancelled", current_task())
        raise
    _ledger("end", current_task())
    return "done"


@task(name="tests.break_producer")
async def break_producer(marker: str) -> str:
    """The first run anywhere (the one that creates the file ``marker``) hands its
    worker's producer buffer a record over the producer's limit, bypassing yadtq's own
    checks: the write failure that once left a worker alive but dead."""
    import os

    from yadtq_app.topics import events_topic

    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return "spared"
    events_topic.send_soon(key=b"break", value=b"x" * 2_000_000)
    return "broke"
