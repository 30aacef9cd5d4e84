"""CrashWatch: a worker that cannot work ends its process (yadtq_app.liveness)."""

from __future__ import annotations

import threading
from typing import Any, Optional

from yadtq_app.liveness import EXIT_CRASHED, CrashWatch, crash_reason


class FakeService:
    def __init__(self) -> None:
        self.crashed = False
        self.crash_reason: Optional[BaseException] = None


def test_crash_reason_names_the_crashed_part() -> None:
    app: Any = FakeService()
    app._producer = FakeService()
    app._producer.buffer = FakeService()
    assert crash_reason(app) is None
    app._producer.buffer.crashed = True
    app._producer.buffer.crash_reason = ValueError("too big")
    assert crash_reason(app) == "the producer buffer crashed: ValueError('too big')"


def test_the_watch_exits_with_its_status_once_the_check_names_a_reason() -> None:
    reasons: list[Optional[str]] = [None, None, "the app crashed"]
    exited = threading.Event()
    codes: list[int] = []

    def check() -> Optional[str]:
        return reasons.pop(0) if reasons else "again"

    def fake_exit(code: int) -> None:
        codes.append(code)
        exited.set()

    watch = CrashWatch(check, interval=0.01, exit=fake_exit)
    watch.start()
    assert exited.wait(5)
    assert codes == [EXIT_CRASHED] and reasons == []


def test_a_failing_check_does_not_stop_the_watch() -> None:
    calls = []
    exited = threading.Event()

    def check() -> Optional[str]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("looking failed")
        return "crashed"

    CrashWatch(check, interval=0.01, exit=lambda code: exited.set()).start()
    assert exited.wait(5) and len(calls) == 2
