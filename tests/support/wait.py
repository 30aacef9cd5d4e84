"""Wait on conditions with deadlines (never bare sleeps)."""

from __future__ import annotations

import time
from typing import Callable, Optional, TypeVar

T = TypeVar("T")


class Timeout(AssertionError):
    pass


def wait_for(check: Callable[[], Optional[T]], *, timeout: float, interval: float = 0.05,
             message: str = "condition") -> T:
    """Call ``check`` until it returns something truthy; that value. Fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc: Optional[BaseException] = None
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep trying until the deadline
            last_exc = exc
        if time.monotonic() >= deadline:
            raise Timeout(f"timed out after {timeout:g} s waiting for {message}"
                          + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)
