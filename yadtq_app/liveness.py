"""Stop a worker that can no longer do its job, so its partitions move to the living.

When a Faust service crashes (for instance the producer buffer, on a record it cannot
send), Faust marks the app crashed and its agents stop, but the process lives on: its
web server still answers and it keeps its place in the consumer group until its
consumer thread stops heartbeating, which may be never. :class:`CrashWatch` looks for
that state from a thread of its own (the event loop may be wedged) and ends the
process with :data:`EXIT_CRASHED`; the group then hands the partitions on and the
tasks that were not acknowledged are read again elsewhere. The watch stays on while
the worker stops: a crashed worker's shutdown can hang (seen: one ignored SIGTERM).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Callable, Optional

from yadtq_app.kafka.private import app_producer

__all__ = ["CrashWatch", "EXIT_CRASHED", "crash_reason"]

logger = logging.getLogger(__name__)

#: The exit status of a worker stopped by :class:`CrashWatch` (``EX_SOFTWARE``).
EXIT_CRASHED = 70


def crash_reason(app: Any) -> Optional[str]:
    """Why ``app``'s worker cannot work any more, or ``None`` while it can: the app, the
    service at the root of its tree (the worker), its producer or the producer's
    buffer crashed."""
    producer = app_producer(app)
    buffer = getattr(producer, "buffer", None)
    root = getattr(getattr(getattr(app, "beacon", None), "root", None), "data", None)
    for name, service in (("app", app), ("worker", root), ("producer", producer), ("producer buffer", buffer)):
        if service is not None and getattr(service, "crashed", False):
            return f"the {name} crashed: {getattr(service, 'crash_reason', None)!r}"
    return None


class CrashWatch:
    """A daemon thread that ends the process once ``check`` returns a reason.

    ``die`` may also be called directly (from any thread) when the caller knows the
    worker cannot go on (:class:`~yadtq_app.errors.RecordWriteError`).
    """

    def __init__(self, check: Callable[[], Optional[str]], *, interval: float = 0.5,
                 exit: Callable[[int], Any] = os._exit) -> None:
        self.check = check
        self.interval = interval
        self._exit = exit
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="yadtq-crash-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                reason = self.check()
            except Exception:  # looking must never kill the watch
                logger.exception("crash watch: could not check the worker")
                continue
            if reason is not None:
                self.die(reason)
                return

    def die(self, reason: str) -> None:
        """Log ``reason`` and end the process with :data:`EXIT_CRASHED` at once (no
        clean shutdown: a crashed worker may hang in one, and what it had not
        acknowledged is read again by the partition's next owner)."""
        logger.critical("the worker cannot go on (%s); exiting with status %d so that its partitions move "
                        "to other workers", reason, EXIT_CRASHED)
        for handler in logging.getLogger().handlers:
            try:
                handler.flush()
            except Exception:  # noqa: BLE001 - exiting anyway
                pass
        self._exit(EXIT_CRASHED)
