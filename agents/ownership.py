"""Whether this worker may act on a task message: the task agent's one vocabulary.

* :func:`may_act` — the partition is this worker's (waits while the worker is frozen);
* :func:`holds` — the partition is this worker's now, and no rebalance is under way;
* :func:`fetched_before_rebalance` — the current message belongs to an older generation;
* :func:`still_ours` — the current message may still be acted on (waits while frozen or
  out of touch with the group); :func:`holds_current` asks the same without waiting;
* :func:`owns_now` — :func:`still_ours`, and the current message is the request's own.

They build on the app's checks (:meth:`~yadtq_app.application.YadtqApp.may_act_on`,
``may_act_now``: evicted, frozen, assigned) and tick its freeze guard. Why each check
exists: ``docs/tasks.md`` (fencing).
"""

from __future__ import annotations

from typing import Any

import faust

from yadtq_app.application import app
from yadtq_app.kafka.commits import stale_ack
from yadtq_app.records import TaskRequest
from yadtq_app.topics import task_topic

__all__ = ["may_act", "holds", "fetched_before_rebalance", "still_ours", "holds_current", "owns_now"]

_TASK_TOPIC = task_topic.get_topic_name()


async def may_act(partition: int) -> bool:
    """Whether task ``partition`` is this worker's to act on; waits while the freeze
    guard is closed, and is False at once if the group evicted this worker."""
    return await app.may_act_on(_TASK_TOPIC, partition)


def holds(partition: int) -> bool:
    """Whether this worker holds task ``partition`` now and is not giving it up (no
    rebalance under way, not frozen, not evicted); never waits."""
    return not app.revoking and app.may_act_now(_TASK_TOPIC, partition)


def fetched_before_rebalance() -> bool:
    """Whether the current message is a task message fetched before the latest
    rebalance: its ack does not count, and whoever owns its partition now reads it again."""
    current = faust.current_event()
    if current is None or current.message.topic != _TASK_TOPIC:
        return False
    return stale_ack(current.message.generation_id, app.consumer_generation_id)


async def still_ours() -> bool:
    """Whether the current task message may still be acted on: no rebalance began since
    it was fetched, the worker is not stopping, this worker holds its partition, and
    (waited for) the group's heartbeats succeed."""
    current = faust.current_event()
    if current is None or app.revoking or app.stopping or fetched_before_rebalance():
        return False
    if not await app.may_act_on(current.message.topic, current.message.partition, strict=True):
        return False
    return not (app.revoking or app.stopping or fetched_before_rebalance())  # either may have begun meanwhile


def holds_current() -> bool:
    """:func:`still_ours` without waiting: False while the worker is frozen, too."""
    current = faust.current_event()
    return current is not None and not fetched_before_rebalance() and holds(current.message.partition)


async def owns_now(request: TaskRequest) -> bool:
    """Whether the current message is ``request``'s own task message (keyed by its id,
    not a stray record) and :func:`still_ours`."""
    current = faust.current_event()
    if current is None or current.message.topic != _TASK_TOPIC or current.message.key != request.key:
        return False
    return await still_ours()


async def _on_assigned(*args: Any, **kwargs: Any) -> None:
    app.freeze_guard.on_assigned()  # what this worker holds now is its own


async def _tick_freeze_guard() -> None:
    app.freeze_guard.tick()


app.on_partitions_assigned.connect(_on_assigned)
app.timer(interval=app.freeze_guard.tick_interval, name="yadtq.freeze_guard_tick")(_tick_freeze_guard)
