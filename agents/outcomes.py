"""How an attempt's end is recorded: :func:`finish_attempt`.

Shared by both ways an attempt runs (:mod:`agents.tasks`, one message at a time, and
:mod:`agents.batch_run`, plain ``def`` tasks of a batch together): the outcome becomes
the task's status (``success``, ``retrying`` with its next start, ``failed`` with a
dead letter, or ``cancelled``), and the worker's memory and metrics follow it.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Optional

from yadtq_app.agents.reporting import dead_letter_exhausted, report
from yadtq_app.application import app, settings
from yadtq_app.execution import Outcome
from yadtq_app.records import CANCELLED, FAILED, RETRYING, SUCCESS, TaskRequest, TaskState
from yadtq_app.registry import TaskDef
from yadtq_app.state import cancelled_error, end_of_attempt

__all__ = ["finish_attempt"]

logger = logging.getLogger(__name__)


async def finish_attempt(request: TaskRequest, taskdef: TaskDef, attempt: int, state: Optional[TaskState],
                         options: dict[str, Any], outcome: Optional[Outcome], started: float) -> bool:
    """Report an attempt's end (``outcome`` ``None``: cancelled); True if the task is final."""
    app.running.forget(request.id)
    retries_used = state.retries if state is not None else 0
    end = end_of_attempt(outcome, taskdef, options, retries_used=retries_used, settings=settings)
    app.metrics.attempt_ended(request.task, end.status, time.time() - started)
    if outcome is None:
        app.finished.add(request.id, CANCELLED, attempt)
        logger.info("worker %s: task %s cancelled in attempt %d", settings.worker_id, request.id, attempt)
        await report(request, CANCELLED, attempt=attempt, state=state, started_at=started, wait=True,
                     error=cancelled_error("cancelled while running"))
        return True
    if outcome.ok:
        app.finished.add(request.id, SUCCESS, attempt)
        app.stats.tasks_done += 1
        await report(request, SUCCESS, attempt=attempt, state=state, result=outcome.result, started_at=started,
                     wait=True)
        return True
    err = outcome.error or {}
    if end.status == RETRYING:
        logger.info("worker %s: task %s (%s) attempt %d failed (%s: %s); retry %d of %d in %.2f s",
                    settings.worker_id, request.id, request.task, attempt, err.get("type"), err.get("message"),
                    retries_used + 1, end.max_retries, end.delay)
        await report(request, RETRYING, attempt=attempt, state=state, error=outcome.error, started_at=started,
                     next_run_at=time.time() + end.delay, wait=True)
        return False
    app.finished.add(request.id, FAILED, attempt)
    app.stats.tasks_failed += 1
    logger.info("worker %s: task %s (%s) failed: %s: %s", settings.worker_id, request.id, request.task,
                err.get("type"), err.get("message"))
    failed = report(request, FAILED, attempt=attempt, state=state, error=outcome.error, started_at=started,
                    wait=True)
    # Every task that ends failed is findable in the dead letters, retried or not (as Celery users expect).
    await dead_letter_exhausted(request, attempt, state, outcome, started,
                                end.max_retries if outcome.retryable else 0)
    await failed
    return True
