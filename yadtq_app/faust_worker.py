"""The worker process's Faust worker: :class:`Worker` (``faust_options`` names it)."""

from __future__ import annotations

import asyncio
import gc
import logging

import faust

__all__ = ["Worker", "collect_less"]


def collect_less(threshold: int) -> None:
    """Collect the youngest generation of garbage after ``threshold`` allocations
    (``YADTQ_GC_THRESHOLD``) instead of Python's 700; the older generations keep their
    thresholds. Why: ``docs/tasks.md``, "Garbage collection"."""
    gc.set_threshold(threshold, *gc.get_threshold()[1:])


class Worker(faust.Worker):
    """Faust's worker without its terminal spinner.

    At log levels of WARN and above, Faust installs a spinner log handler at DEBUG and
    sets the *root logger* to DEBUG, so every ``log.debug`` call in aiokafka and Faust
    builds a log record that is then thrown away: measured at about a tenth of a busy
    worker's CPU. Without the spinner the root logger keeps the configured level.
    """

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None

    async def _sentinel_task(self) -> None:
        """The loop's last run before it closes: until no task is left, at most a second
        (mode sleeps that second on every stop, which made each stop take 1 s longer)."""
        loop, me = asyncio.get_running_loop(), asyncio.current_task()
        deadline = loop.time() + 1.0
        await asyncio.sleep(0)  # callbacks the stop scheduled, e.g. for closed connections
        while loop.time() < deadline and any(task is not me for task in asyncio.all_tasks()):
            await asyncio.sleep(0.01)

    async def default_on_first_start(self) -> None:
        await super().default_on_first_start()  # logging is set up here
        settings = getattr(self.app, "settings", None)
        if settings is not None:
            collect_less(settings.gc_threshold)
        # Before Faust opens anything: the data folder's lock, the broker, stale tables
        # (yadtq_app.application.YadtqApp.prepare_local_state).
        prepare = getattr(self.app, "prepare_local_state", None)
        if prepare is not None:
            await prepare()
