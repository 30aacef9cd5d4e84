"""The dashboard every worker serves: the page at ``/`` and ``/dashboard``, its script
and style, and the JSON it polls (``GET /dashboard/api/state``, gathered from every
alive worker's ``GET /dashboard/api/local``). See ``docs/http.md``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Optional

import aiohttp
from faust.web import Request, Response, View

from yadtq_app.api_schema import MAX_DASHBOARD_TASKS
from yadtq_app.application import app, settings
from yadtq_app.errors import Refused
from yadtq_app.records import STATUSES
from yadtq_app.routing import answers_locally, locate_many
from yadtq_app.tables.task_status import get_status_json, task_status

__all__ = ["merge_tasks", "row_time", "STATIC", "CSP"]

logger = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("dashboard_static")
#: The page's files and their content types (nothing else under /dashboard/ is served).
ASSETS = {"dashboard.js": "application/javascript", "dashboard.css": "text/css"}
#: Script, style and requests from this origin only; no inline script, no framing.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
#: The most tasks one state answer lists (in the API's schemas: GET /openapi.json).
MAX_TASKS = MAX_DASHBOARD_TASKS
#: Seconds one worker's local answer may take before the page goes without it.
PEER_TIMEOUT = 2.0


def row_time(row: dict[str, Any]) -> float:
    """When a status row last changed: its newest time (history, finish, start, submit)."""
    times = [row.get(k) for k in ("finished_at", "started_at", "submitted_at", "next_run_at")]
    times += [h.get(k) for h in row.get("history") or () if isinstance(h, dict) for k in ("started_at", "finished_at")]
    return max((t for t in times if isinstance(t, (int, float))), default=0.0)


def merge_tasks(answers: list[list[dict[str, Any]]], limit: int) -> list[dict[str, Any]]:
    """One list of the workers' rows: one row per task (the newest), newest first."""
    best: dict[str, dict[str, Any]] = {}
    for rows in answers:
        for row in rows:
            had = best.get(row["task-id"])
            if had is None or row_time(row) > row_time(had):
                best[row["task-id"]] = row
    return sorted(best.values(), key=row_time, reverse=True)[:limit]


def _query(request: Request) -> tuple[Optional[str], int]:
    status = request.query.get("status") or None
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(sorted(STATUSES))}")
    raw = request.query.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_TASKS:
        raise ValueError(f"limit must be an integer from 1 to {MAX_TASKS}")
    return status, int(raw)


class _Page(View):
    async def get(self, request: Request) -> Response:
        return self.bytes((STATIC / "index.html").read_bytes(),
                          headers={"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": CSP,
                                   "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})


app.page("/")(_Page)
app.page("/dashboard")(_Page)


@app.page("/dashboard/{asset}")
class AssetView(View):
    """``GET /dashboard/dashboard.js`` and ``…/dashboard.css``: the page's script and style."""

    async def get(self, request: Request, asset: str) -> Response:
        kind = ASSETS.get(asset)
        if kind is None:
            raise Refused(404, f"no dashboard file {asset!r}")
        return self.bytes((STATIC / asset).read_bytes(),
                          headers={"Content-Type": f"{kind}; charset=utf-8", "X-Content-Type-Options": "nosniff",
                                   "Cache-Control": "no-cache"})


@app.page("/dashboard/api/local")
class LocalView(View):
    """``GET /dashboard/api/local[?status=S&limit=N]``: the newest status rows this
    worker wrote, for the task partitions it holds now."""

    async def get(self, request: Request) -> Response:
        try:
            status, limit = _query(request)
        except ValueError as exc:
            raise Refused(400, str(exc), reason="bad-field") from None
        topic = task_status.changelog_topic.get_topic_name()
        rows: list[dict[str, Any]] = []
        where = await locate_many(topic)
        for task_id in app.recent.newest():
            if len(rows) >= limit:
                break
            tp, _owner = where(task_id.encode())
            if not answers_locally(tp):
                continue  # moved to another worker: that one answers for it
            row = get_status_json(task_id)
            if row is not None and (status is None or row["status"] == status):
                rows.append(row)
        return self.json({"worker": settings.worker_id, "tasks": rows})


async def _get_json(session: aiohttp.ClientSession, url: str) -> Optional[dict[str, Any]]:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=PEER_TIMEOUT)) as resp:
            if resp.status != 200:
                return None
            found = await resp.json()
            return found if isinstance(found, dict) else None
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return None


@app.page("/dashboard/api/state")
class StateView(View):
    """``GET /dashboard/api/state[?status=S&limit=N]``: workers, recent tasks, lag per
    task partition and the newest dead letters, gathered from every alive worker."""

    async def get(self, request: Request) -> Response:
        try:
            status, limit = _query(request)
        except ValueError as exc:
            raise Refused(400, str(exc), reason="bad-field") from None
        me = str(app.conf.canonical_url).rstrip("/")
        session = app.http_client
        workers = await _get_json(session, f"{me}/workers")
        if workers is None:
            raise Refused(503, "the workers table cannot be read now (rebalancing); retry")
        rows = workers.get("workers", [])
        query = f"?limit={limit}" + (f"&status={status}" if status else "")
        alive = [w for w in rows if w.get("alive") and w.get("url")]
        answers = await asyncio.gather(*(_get_json(session, f"{w['url'].rstrip('/')}/dashboard/api/local{query}")
                                         for w in alive))
        dead = await _get_json(session, f"{me}/dead-letters?limit=20")
        lag = await app.group_lag.read()
        return self.json({
            "workers": rows,
            "tasks": merge_tasks([(a or {}).get("tasks", []) for a in answers], limit),
            "lag": {str(p): n for p, n in sorted(lag.items())},
            "unanswered": [w["id"] for w, a in zip(alive, answers) if a is None],
            "dead_letters": (dead or {}).get("dead_letters", []),
            "dead_letters_known": dead is not None,
        })
