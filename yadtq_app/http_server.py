"""The workers' HTTP server: Faust's aiohttp driver with yadtq's limits and JSON errors.

:class:`WebServer` serves with an idle timeout (``YADTQ_HTTP_IDLE_TIMEOUT``), no request
decompression (415), a body size cap (``YADTQ_MAX_MESSAGE_BYTES``, 413) and a body read
timeout (``YADTQ_HTTP_READ_TIMEOUT``, 408); :func:`json_errors` answers every error,
including the :class:`~yadtq_app.errors.Refused` a view raises, as JSON
(``docs/http.md``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Awaitable, Callable, Optional

from aiohttp import web
from faust.utils import json as faust_json
from faust.web.drivers.aiohttp import Web

from .errors import InvalidTask, Refused
from .settings import Settings

__all__ = ["WebServer", "json_errors", "json_error", "measured"]

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


#: The ``reason`` of an error aiohttp raised itself (no such path or method, ...).
HTTP_REASONS = {400: "bad-request", 404: "not-found", 405: "method-not-allowed", 413: "too-large"}


def json_error(status: int, message: str, *, reason: Optional[str] = None,
               fields: Optional[dict[str, Any]] = None, close: bool = False,
               headers: Optional[dict[str, str]] = None, dumps: Callable[[Any], str] = json.dumps) -> web.Response:
    """An error answer: ``{"error": message, "reason": reason, **fields}`` with ``status``
    and ``headers`` (plus ``Retry-After: 1`` on a 503); ``close`` ends the connection
    after it (its request body was not read)."""
    body: dict[str, Any] = {"error": message}
    if reason is not None:
        body["reason"] = reason
    body.update(fields or {})
    headers = {**(headers or {}), **({"Retry-After": "1"} if status == 503 else {})}
    resp = web.json_response(body, status=status, headers=headers or None, dumps=dumps)
    if close:
        resp.force_close()
    return resp


def json_errors(settings: Settings) -> Any:
    """aiohttp middleware: reads the request body under the limits above before the
    view runs, and turns whatever a view raises into a JSON answer:
    :class:`~yadtq_app.errors.Refused` its own, aiohttp's HTTP errors keep their status,
    :class:`~yadtq_app.errors.InvalidTask` is a 400, any other exception a 500 (logged
    with its traceback)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.body_exists:
                refused = await _read_body(request, settings)
                if refused is not None:
                    return refused
            return await handler(request)
        except Refused as exc:
            # Serialized as Faust's View.json serializes (compact), as views answered before.
            return json_error(exc.status, exc.message, fields=exc.fields, dumps=faust_json.dumps)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            reason = HTTP_REASONS.get(exc.status, f"http-{exc.status}")
            # A 405's Allow (RFC 9110 requires it); the body's own headers are json_error's.
            allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            return json_error(exc.status, exc.text or exc.reason, reason=reason, close=exc.status == 413,
                              headers=allow)
        except InvalidTask as exc:
            return json_error(400, str(exc), reason=exc.reason)
        except asyncio.CancelledError:
            raise
        except ConnectionError:
            # The client hung up (say, mid-body): nobody to answer and nothing broken
            # (raised, aiohttp would log it as an error with its traceback).
            logger.debug("worker %s: %s %s: the client went away", settings.worker_id, request.method,
                         request.rel_url)
            return json_error(400, "the client closed the connection", reason="disconnected", close=True)
        except Exception as exc:  # the point: no view answers text/plain
            logger.exception("worker %s: %s %s failed", settings.worker_id, request.method, request.rel_url)
            return json_error(500, f"internal error ({type(exc).__name__}); see the worker's log", reason="internal")

    return middleware


#: The methods the ``method`` label names; any other is ``other`` (labels stay bounded).
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def measured(metrics: Any) -> Any:
    """aiohttp middleware: counts each answer by route pattern, method and status, and
    times it (``metrics``: :class:`yadtq_app.metrics.Metrics`)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            method = request.method if request.method in METHODS else "other"
            metrics.http_requests.labels(route, method, str(status)).inc()
            metrics.http_duration.labels(route).observe(time.perf_counter() - started)

    return middleware


async def _read_body(request: web.Request, settings: Settings) -> Optional[web.Response]:
    """Read the body into the request (``request.read()`` answers from it later); an
    error answer instead if it is compressed, too large or too slow."""
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return json_error(415, f"request bodies must not be compressed (Content-Encoding: {encoding})",
                          reason="compressed", close=True)
    limit = settings.max_message_bytes
    if request.content_length is not None and request.content_length > limit:
        return json_error(413, f"request body of {request.content_length} bytes exceeds {limit} bytes",
                          reason="too-large", close=True)
    try:
        await asyncio.wait_for(request.read(), settings.http_read_timeout)
    except asyncio.TimeoutError:
        return json_error(408, f"request body not received within {settings.http_read_timeout:g} s",
                          reason="slow-body", close=True)
    return None


class WebServer(Web):
    """Faust's aiohttp web driver, with the application and runner described above."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        settings: Settings = app.settings
        self.web_app = web.Application(middlewares=[measured(app.metrics), json_errors(settings)],
                                       client_max_size=settings.max_message_bytes)
        self._runner = web.AppRunner(self.web_app, access_log=None, keepalive_timeout=settings.http_idle_timeout,
                                     auto_decompress=False)
