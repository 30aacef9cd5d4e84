"""Leases: a worker's hold on the attempts it runs while their partitions move.

When a rebalance begins, :func:`lease_in_flight` sends a ``processing`` event with a
lease of :data:`LEASE` seconds for each attempt running here, and the rebalance goes
on without waiting for them (:func:`lease_covers`). While this worker runs attempts of
partitions it does not hold, a timer renews their leases (:func:`renew_leases`) and
another cancels those whose rows ask for it (:func:`cancel_leased`). A worker that
finds a row leased by another waits for its outcome (:data:`yadtq_app.state.WAIT`,
looking again every :data:`LEASE_POLL`), and once the lease has run out, until every
event written so far is folded (``agents.tasks._decide``). Why: ``docs/tasks.md``
(leases).
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from typing import Any, Optional

import aiohttp

from yadtq_app.agents.ownership import holds
from yadtq_app.agents.reporting import event_for
from yadtq_app.application import app, settings
from yadtq_app.peers import ROUTED_HEADER
from yadtq_app.records import CANCELLED, PROCESSING
from yadtq_app.tables.task_status import get_status, task_status
from yadtq_app.topics import events_topic, task_topic

__all__ = ["LEASE", "LEASE_RENEW", "LEASE_POLL", "lease_in_flight", "lease_covers", "renew_leases",
           "cancel_leased", "cancel_if_requested", "send_leases"]

logger = logging.getLogger(__name__)

_TASK_TOPIC = task_topic.get_topic_name()

#: How long a lease holds a running attempt for its worker (s): three heartbeats.
LEASE = settings.effective_worker_timeout
#: How often a worker renews the leases of tasks whose partitions it does not hold (s).
LEASE_RENEW = settings.heartbeat_interval
#: How often a worker waiting on another's lease looks at the row again (s).
LEASE_POLL = 0.05

#: Keys of the task messages whose attempts were leased when the current rebalance began.
_leased_keys: set[bytes] = set()


async def lease_in_flight() -> None:
    """A rebalance begins: lease every attempt running here (:func:`lease_covers` then
    tells the rebalance not to wait for their messages)."""
    _leased_keys.clear()
    _leased_keys.update(await send_leases(list(app.running.attempts())))


def lease_covers(message: Any) -> bool:
    """Whether ``message`` is a task message whose task's running attempt holds a lease
    sent at the start of this rebalance (a duplicate of it waiting behind the attempt
    is skipped once the attempt ends: it was fetched before the rebalance)."""
    return message.topic == _TASK_TOPIC and message.key in _leased_keys


def _leased_here() -> list[str]:
    """The attempts running here whose partitions this worker does not hold now."""
    return [task_id for task_id, attempt in app.running.attempts().items() if not holds(attempt.partition)]


async def renew_leases() -> None:
    """Renew the leases of attempts whose partitions this worker does not hold now."""
    ids = _leased_here()
    if ids:
        await send_leases(ids)


async def cancel_leased() -> None:
    """Cancel the leased attempts whose rows ask for it (:func:`cancel_if_requested`);
    a timer of its own, so an owner slow to answer never holds a renewal back."""
    ids = _leased_here()
    if ids:
        await cancel_if_requested(ids)


async def cancel_if_requested(ids: list[str]) -> None:
    """Cancel the attempts of ``ids`` running here whose rows, on the workers that own
    them now, ask for it (the new owner folds the cancel but cannot reach the attempt)."""
    for task_id in ids:
        row = await _row_from_owner(task_id)
        if row is not None and (row.get("cancel_requested") or row.get("status") == CANCELLED) \
                and app.running.cancel(task_id):
            logger.info("worker %s: task %s: cancelled here at its owner's request (leased attempt)",
                        settings.worker_id, task_id)


async def _row_from_owner(task_id: str) -> Optional[dict[str, Any]]:
    """The status row of ``task_id`` as the worker owning its partition has it, or
    ``None`` (no row, no owner known, no answer)."""
    try:
        owner = str(app.router.key_store(task_status.name, task_id.encode()))
    except Exception:  # noqa: BLE001 - no owner known now (a rebalance): ask next time
        return None
    if owner == str(app.conf.canonical_url):
        state = get_status(task_id)
        return state.to_json() if state is not None else None
    url = f"{owner.rstrip('/')}/tasks/{urllib.parse.quote(task_id, safe='')}"
    try:
        async with app.http_client.get(url, headers={ROUTED_HEADER: "1"},
                                       timeout=aiohttp.ClientTimeout(total=2)) as resp:
            return await resp.json() if resp.status == 200 else None
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return None


async def send_leases(ids: list[str], *, timeout: float = 5.0) -> set[bytes]:
    """Send a lease for each of ``ids`` that still runs here; wait until the broker has
    them. The keys of the tasks leased (none if the broker did not confirm them all)."""
    now = time.time()
    sent = []
    keys = set()
    for task_id in ids:
        attempt = app.running.attempt(task_id)
        if attempt is None:
            continue
        request = attempt.request
        event = event_for(request, PROCESSING, attempt=attempt.number, started_at=attempt.started,
                          lease_until=now + LEASE)
        sent.append(await events_topic.send(key=request.key, value=event))
        keys.add(request.key)
    if not sent:
        return set()
    try:
        await asyncio.wait_for(asyncio.gather(*sent), timeout)
    except Exception:
        logger.exception("worker %s: could not send the leases of %d running tasks", settings.worker_id, len(sent))
        return set()
    logger.info("worker %s: leased %d running tasks for %.1f s", settings.worker_id, len(sent), LEASE)
    return keys


app.lease_covers = lease_covers
app.on_revoking.append(lease_in_flight)
app.timer(interval=LEASE_RENEW, name="yadtq.renew_leases")(renew_leases)
app.timer(interval=LEASE_RENEW, name="yadtq.cancel_leased")(cancel_leased)
