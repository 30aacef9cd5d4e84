"""A worker's data folder: one worker at a time (a lock), and tables that match the broker.

A worker keeps its RocksDB tables in its data folder (``.yadtq/worker-<port>``) and
rebuilds from the changelog only what it lacks. Tables from another broker (the
embedded broker starts empty every time) or from changelog topics that were deleted
and created again are wrong, and Faust refuses them (``ConsistencyError … (31 >
3)``). So the folder holds a marker, ``broker.json``: the cluster id of the broker
the tables came from and the changelog end offsets seen when the worker last
started. At start (:func:`check_marker`), a different cluster id, a missing marker
beside existing tables, or an end offset below the recorded one (the topic was
created again) means the tables are wiped before Faust opens them and rebuilt from
the changelog the broker has; one log line says so.

The lock (:class:`DataDirLock`) is ``worker.lock`` in the folder, held with
``flock`` for the life of the process: two workers never share a folder.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Optional

from .errors import ConfigurationError

__all__ = ["DataDirLock", "DataDirInUse", "BrokerMarker", "stale_reason", "check_marker", "MARKER", "LOCK"]

logger = logging.getLogger(__name__)

MARKER = "broker.json"
LOCK = "worker.lock"


class DataDirInUse(ConfigurationError):
    """Another worker holds this data folder."""


class DataDirLock:
    """An exclusive ``flock`` on ``<folder>/worker.lock``, kept until the process ends
    (or :meth:`release`). The file descriptor is not inherited, so a process that
    replaces itself (``exec``) gives the lock up and takes it again."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self._file: Optional[IO[str]] = None

    def acquire(self) -> None:
        """Take the lock; :class:`DataDirInUse` (naming the holder's pid) if another process has it."""
        if self._file is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        f = open(self.folder / LOCK, "a+")  # held for the life of the process
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            f.close()
            raise DataDirInUse(
                f"the data folder {self.folder} is in use by another worker (pid {holder}): give each worker its "
                "own, with another --web-port (the folder follows it) or YADTQ_DATA_DIR (yadtq worker --data-dir)"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass
class BrokerMarker:
    """Which broker the tables in a data folder came from."""

    cluster_id: Optional[str]
    #: changelog topic → partition (as text, JSON keys) → end offset when last seen.
    end_offsets: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"cluster_id": self.cluster_id, "end_offsets": self.end_offsets}

    @classmethod
    def load(cls, folder: str) -> Optional["BrokerMarker"]:
        """The marker in ``folder``; ``None`` if there is none (or it cannot be read)."""
        try:
            data = json.loads((Path(folder) / MARKER).read_text())
            return cls(cluster_id=data.get("cluster_id"), end_offsets=dict(data.get("end_offsets") or {}))
        except (OSError, ValueError, AttributeError):
            return None

    def save(self, folder: str) -> None:
        path = Path(folder) / MARKER
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1, sort_keys=True))
        os.replace(tmp, path)


def stale_reason(old: Optional[BrokerMarker], new: BrokerMarker, *, has_tables: bool) -> Optional[str]:
    """Why tables recorded under ``old`` are not those of the broker described by
    ``new``; ``None`` if they are (or there are no tables)."""
    if not has_tables:
        return None
    if old is None:
        return "there is no record of the broker they came from"
    if old.cluster_id != new.cluster_id:
        return f"they came from broker cluster {old.cluster_id!r}, and this broker is {new.cluster_id!r}"
    for topic, partitions in old.end_offsets.items():
        for partition, offset in partitions.items():
            now = new.end_offsets.get(topic, {}).get(partition)
            if now is None or now < offset:
                return (f"changelog {topic}[{partition}] ends at {now if now is not None else 'nothing'}, "
                        f"below the {offset} seen before: the topic was created again")
    return None


def has_tables(folder: str) -> bool:
    """Whether ``folder`` holds anything besides the marker and the lock."""
    try:
        return any(p.name not in (MARKER, LOCK) and not p.name.endswith(".tmp") for p in Path(folder).iterdir())
    except OSError:
        return False


def wipe_tables(folder: str) -> None:
    """Remove everything in ``folder`` but the marker and the lock."""
    for p in Path(folder).iterdir():
        if p.name in (MARKER, LOCK):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def check_marker(folder: str, current: BrokerMarker) -> Optional[str]:
    """Wipe the tables in ``folder`` if they belong to another broker than ``current``
    (logging why, once), then record ``current``. Why they were wiped, or ``None``."""
    reason = stale_reason(BrokerMarker.load(folder), current, has_tables=has_tables(folder))
    if reason is not None:
        logger.warning("the local tables in %s do not belong to this broker (%s): wiped, rebuilding them from the "
                       "changelog", folder, reason)
        wipe_tables(folder)
    current.save(folder)
    return reason
