"""What the other alive workers register: every worker must run the same tasks.

A task message goes to whichever worker owns its partition, so a task that only some
workers register fails there (``unknown task``, a dead letter) and runs elsewhere.
Each worker advertises its task names and their digest in its heartbeat
(:class:`~yadtq_app.records.Heartbeat`); :class:`PeerTasks` keeps the latest
``GET /workers`` view of them, so that ``POST /tasks`` can refuse a task that not
every alive worker registers, and a worker whose set differs says so in its log.
Pure code: no Faust, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional

__all__ = ["PeerTasks", "Peer", "differing", "ROUTED_HEADER", "ROWS_ONLY_HEADER"]

#: The header that marks a request one worker sends another (a read routed to the
#: partition's owner, a cancel pulled by a lease holder): the receiver answers it from
#: its own table, without routing it on.
ROUTED_HEADER = "X-Yadtq-Routed"
#: On a routed ``POST /tasks/status``: answer from the table only, without looking among
#: the task topic's unread messages (a submission's duplicate check: yadtq_app.backlog).
ROWS_ONLY_HEADER = "X-Yadtq-Rows-Only"


@dataclass(frozen=True)
class Peer:
    """One alive worker's task set, as its heartbeat advertised it."""

    worker: str
    tasks: frozenset[str]
    digest: str


def differing(workers: Iterable[dict[str, Any]]) -> set[str]:
    """Ids of the alive workers whose task digest is not that of every other alive worker."""
    alive = [w for w in workers if w.get("alive") and w.get("tasks_digest")]
    digests = {w["tasks_digest"] for w in alive}
    return {w["id"] for w in alive} if len(digests) > 1 else set()


class PeerTasks:
    """The task sets of the other alive workers, from the last ``GET /workers`` answer."""

    def __init__(self, me: str, my_tasks: Iterable[str], my_digest: str) -> None:
        self.me = me
        self.my_tasks = frozenset(my_tasks)
        self.my_digest = my_digest
        #: Other alive workers; ``None`` until a view of them was had.
        self.others: Optional[dict[str, Peer]] = None
        self._warned: set[tuple[str, str]] = set()

    def update(self, workers: Iterable[dict[str, Any]]) -> list[str]:
        """Take a ``GET /workers`` list; the warnings to log for workers newly seen
        registering another set than this one (each worker and set once)."""
        others = {}
        for w in workers:
            if w.get("id") == self.me or not w.get("alive") or not w.get("tasks_digest"):
                continue  # dead, or a worker from before tasks were advertised
            others[w["id"]] = Peer(w["id"], frozenset(w.get("tasks") or ()), w["tasks_digest"])
        self.others = others
        warnings = []
        for peer in others.values():
            if peer.digest == self.my_digest or (peer.worker, peer.digest) in self._warned:
                continue
            self._warned.add((peer.worker, peer.digest))
            lacks = sorted(self.my_tasks - peer.tasks)
            extra = sorted(peer.tasks - self.my_tasks)
            warnings.append(
                f"worker {peer.worker} registers other tasks than this one ({self.me}): it lacks "
                f"{', '.join(lacks) or 'none'}; only it has {', '.join(extra) or 'none'}. Tasks one of "
                "them lacks fail as 'unknown task' there: every worker must load the same YADTQ_TASK_MODULES")
        return warnings

    def anywhere(self, name: str) -> bool:
        """Whether this worker or another alive one registers ``name``."""
        return name in self.my_tasks or any(name in p.tasks for p in (self.others or {}).values())

    def lacking(self, name: str) -> list[str]:
        """Alive workers (this one included) that do not register ``name``."""
        out = sorted(p.worker for p in (self.others or {}).values() if name not in p.tasks)
        return ([self.me] if name not in self.my_tasks else []) + out
