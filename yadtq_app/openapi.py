"""The OpenAPI 3.1 document of the HTTP API (``GET /openapi.json``) and its docs page
(``GET /docs``).

The document is built from :data:`ROUTES`, one entry per path and method, whose
bodies name schemas of :data:`yadtq_app.api_schema.SCHEMAS`, the ones the views
validate with; the schemas are not copied here. ``tests/unit/test_openapi.py`` fails
when a view has no entry.

The docs page (``docs.html``, next to this module) is self-contained: it renders the
document it fetches from ``/openapi.json`` with a few lines of script, no CDN.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Optional

from .api_schema import MAX_DASHBOARD_TASKS, MAX_WAIT, SCHEMAS, ref
from .records import STATUSES

__all__ = ["Route", "ROUTES", "document", "docs_page"]


@dataclass(frozen=True)
class Route:
    """One operation: ``method`` on ``path``, its request body schema (a name in
    ``SCHEMAS``), its answers (status → schema name, or media types for non-JSON,
    ``|`` between choices) and parameters (``{task_id}`` is added by itself)."""

    path: str
    method: str
    summary: str
    answers: dict[int, str]
    body: Optional[str] = None
    query: tuple[dict[str, Any], ...] = ()
    description: str = ""
    tags: tuple[str, ...] = field(default=("tasks",))


#: Answers any request with a body may get from the HTTP server before a view runs
#: (:mod:`yadtq_app.http_server`).
BODY_ERRORS = {408: "Error", 413: "Error", 415: "Error"}
#: A path with a task id in it that is not one (``bad-id``).
ID_ERRORS = {400: "Error"}
#: The worker holding the row is rebalancing, or did not answer: ask again.
UNAVAILABLE = {503: "Error"}

TEXT = "text/plain"
HTML = "text/html"
#: The dashboard's ``?status=&limit=`` (yadtq_app.dashboard).
DASHBOARD_QUERY = (
    {"name": "status", "in": "query", "required": False, "schema": {"enum": list(STATUSES)}},
    {"name": "limit", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_DASHBOARD_TASKS, "default": 50}},
)

ROUTES: tuple[Route, ...] = (
    Route("/tasks", "post", "Submit a task, or up to 1,000 (bulk)", body="TaskSubmission|BulkSubmission",
          answers={202: "Accepted", 200: "Duplicate|BulkAnswer", 400: "Error", **BODY_ERRORS, **UNAVAILABLE},
          description="One task: 202 once its message is in Kafka; 200 with the existing task if its id is "
                      "taken. A list: 200 with one item per task, in order (400, or 503 if only the brokers "
                      "refused, when none was accepted)."),
    Route("/tasks/{task_id}", "get", "A task's status row", answers={200: "TaskRow", 404: "Error", **ID_ERRORS,
                                                                      **UNAVAILABLE},
          query=({"name": "wait", "in": "query", "required": False,
                  "description": "long poll: answer once the task is final, or after this many seconds",
                  "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_WAIT}},)),
    Route("/tasks/status", "post", "Many status rows at once", body="StatusRequest",
          answers={200: "StatusAnswer", 400: "Error", **BODY_ERRORS}),
    Route("/tasks/{task_id}/cancel", "post", "Cancel a waiting or running task",
          answers={202: "ChangeRequested", 404: "Error", 409: "Error", **ID_ERRORS, **BODY_ERRORS, **UNAVAILABLE}),
    Route("/tasks/{task_id}/retry", "post", "Run a failed or cancelled task again",
          answers={202: "ChangeRequested", 404: "Error", 409: "Error", **ID_ERRORS, **BODY_ERRORS, **UNAVAILABLE}),
    Route("/workers", "get", "Every worker heard from lately", answers={200: "Workers", **UNAVAILABLE},
          tags=("workers",)),
    Route("/dead-letters", "get", "Tasks that will never run", answers={200: "DeadLetters", 400: "Error",
                                                                          **UNAVAILABLE},
          query=({"name": "limit", "in": "query", "required": False, "description": "the newest this many",
                  "schema": {"type": "integer", "minimum": 1, "default": 1000}},)),
    Route("/registry", "get", "The tasks this worker registers", answers={200: "Registry"}, tags=("workers",)),
    Route("/metrics", "get", "Metrics in Prometheus' text format", answers={200: TEXT}, tags=("workers",)),
    Route("/health", "get", "Whether this worker works", answers={200: "Health", **UNAVAILABLE}, tags=("workers",)),
    Route("/openapi.json", "get", "This document", answers={200: "application/json"}, tags=("api",)),
    Route("/docs", "get", "This document as a web page", answers={200: HTML}, tags=("api",)),
    Route("/", "get", "The dashboard (HTML)", answers={200: HTML}, tags=("dashboard",)),
    Route("/dashboard", "get", "The dashboard (HTML)", answers={200: HTML}, tags=("dashboard",)),
    Route("/dashboard/{asset}", "get", "The dashboard's script and style",
          answers={200: "application/javascript|text/css", 404: "Error"}, tags=("dashboard",),
          query=({"name": "asset", "in": "path", "required": True,
                  "schema": {"type": "string", "examples": ["dashboard.js", "dashboard.css"]}},)),
    Route("/dashboard/api/local", "get", "The newest status rows this worker wrote", tags=("dashboard",),
          answers={200: "DashboardLocal", 400: "Error"}, query=DASHBOARD_QUERY),
    Route("/dashboard/api/state", "get", "What the dashboard shows, from every alive worker", tags=("dashboard",),
          answers={200: "DashboardState", 400: "Error", **UNAVAILABLE}, query=DASHBOARD_QUERY),
)


def _content(names: str) -> dict[str, Any]:
    """The ``content`` of a body: ``"A|B"`` is either schema; media types are themselves."""
    if "/" in names:
        return {t: {"schema": {"type": "object"} if t == "application/json" else {"type": "string"}}
                for t in names.split("|")}
    choices = [ref(n) for n in names.split("|")]
    return {"application/json": {"schema": choices[0] if len(choices) == 1 else {"anyOf": choices}}}


def _answer(status: int, names: str) -> dict[str, Any]:
    out: dict[str, Any] = {"description": _STATUS_TEXT.get(status, str(status)), "content": _content(names)}
    if status == 503:
        out["headers"] = {"Retry-After": {"description": "seconds to wait before asking again", "required": True,
                                          "schema": {"type": "integer", "minimum": 0}}}
    return out


_STATUS_TEXT = {200: "OK", 202: "Accepted", 400: "Bad request (`reason` says what)", 404: "No such task",
                408: "The body was not received in time", 409: "Not possible in the task's status",
                413: "The body is too large", 415: "The body is compressed",
                503: "Not answerable now (rebalancing, or the brokers did not confirm): retry after Retry-After"}


def _operation(route: Route) -> dict[str, Any]:
    name = route.path.replace("/", "_").replace("{", "").replace("}", "")
    op: dict[str, Any] = {"summary": route.summary, "tags": list(route.tags), "operationId": route.method + name,
                          "responses": {str(s): _answer(s, n) for s, n in sorted(route.answers.items())}}
    if route.description:
        op["description"] = route.description
    params = list(route.query)
    if "{task_id}" in route.path:
        params.insert(0, {"name": "task_id", "in": "path", "required": True, "schema": ref("TaskId"),
                          "description": "percent-encoded UTF-8"})
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": _content(route.body)}
    return op


def document(*, version: str, server_url: Optional[str] = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route in :data:`ROUTES` (a new dict each call)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method] = _operation(route)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "yadtq", "version": version,
                 "description": "A distributed task queue on Faust and Apache Kafka. Every worker answers every "
                                "route; reads are routed to the worker that holds the row. Errors are JSON "
                                "`{\"error\": ..., \"reason\": ...}`."},
        "paths": paths,
        "components": {"schemas": copy.deepcopy(SCHEMAS)},
    }
    if server_url is not None:
        doc["servers"] = [{"url": server_url}]
    return doc


def docs_page() -> bytes:
    """The HTML of ``GET /docs`` (self-contained: it fetches ``/openapi.json``)."""
    return resources.files(__package__).joinpath("docs.html").read_bytes()
