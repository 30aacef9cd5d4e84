"""yadtq's aiohttp middleware on a real in-process aiohttp server: no answer is text/plain."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from yadtq_app.errors import InvalidTask, Refused
from yadtq_app.http_server import json_errors
from yadtq_app.settings import Settings


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("a bug")


async def deep(request: web.Request) -> web.Response:
    raise RecursionError("maximum recursion depth exceeded")


async def invalid(request: web.Request) -> web.Response:
    raise InvalidTask("no good", reason="bad-field")


async def busy(request: web.Request) -> web.Response:
    raise Refused(503, "rebalancing", reason="later", tasks=[1])


async def conflict(request: web.Request) -> web.Response:
    raise Refused(409, "it is done", task_status="success")


async def crashed(request: web.Request) -> web.Response:
    raise Refused(503, "cannot work", status="crashed")  # a field may be called "status"


async def echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read())


async def client(**settings: Any) -> TestClient:
    app = web.Application(middlewares=[json_errors(Settings(worker_id="w", **settings))], client_max_size=100)
    for path, handler in (("/boom", boom), ("/deep", deep), ("/invalid", invalid), ("/busy", busy),
                          ("/conflict", conflict), ("/crashed", crashed)):
        app.router.add_get(path, handler)
    app.router.add_post("/echo", echo)
    c = TestClient(TestServer(app))
    await c.start_server()
    return c


async def test_uncaught_exceptions_are_json_500s_and_bad_input_json_400s() -> None:
    c = await client()
    try:
        for path, status, reason in (("/boom", 500, "internal"), ("/deep", 500, "internal"),
                                     ("/invalid", 400, "bad-field"), ("/nowhere", 404, "not-found")):
            resp = await c.get(path)
            assert resp.status == status and resp.content_type == "application/json", (path, await resp.text())
            body = await resp.json()
            assert body["error"] and body.get("reason") == reason, body
        resp = await c.post("/echo", data=b"x" * 100)
        assert resp.status == 200 and await resp.read() == b"x" * 100  # the body read first is the view's
    finally:
        await c.close()


async def test_a_body_over_the_limit_or_compressed_is_refused_as_json() -> None:
    c = await client(max_message_bytes=100)
    try:
        resp = await c.post("/echo", data=b"x" * 101)
        assert resp.status == 413 and (await resp.json())["reason"] == "too-large"
        resp = await c.post("/echo", data=b"x", headers={"Content-Encoding": "gzip"})
        assert resp.status == 415 and (await resp.json())["reason"] == "compressed"
        resp = await c.post("/echo", data=b"x", headers={"Content-Encoding": "identity"})
        assert resp.status == 200
    finally:
        await c.close()


async def test_a_405_names_the_allowed_methods() -> None:
    """RFC 9110: a 405 carries ``Allow``; the JSON error keeps aiohttp's header."""
    c = await client()
    try:
        resp = await c.request("TRACE", "/boom")
        assert resp.status == 405 and (await resp.json())["reason"] == "method-not-allowed"
        assert set(resp.headers.get("Allow", "").split(",")) == {"GET", "HEAD"}, dict(resp.headers)
    finally:
        await c.close()


async def test_a_refusal_is_its_status_and_fields_as_compact_json() -> None:
    """A view's Refused: ``{"error", **fields}`` serialized as Faust's View.json does;
    a 503 carries ``Retry-After``."""
    c = await client()
    try:
        resp = await c.get("/busy")
        assert resp.status == 503 and resp.headers.get("Retry-After") == "1"
        assert resp.content_type == "application/json"
        assert await resp.read() == b'{"error":"rebalancing","reason":"later","tasks":[1]}'
        resp = await c.get("/conflict")
        assert resp.status == 409 and "Retry-After" not in resp.headers
        assert await resp.json() == {"error": "it is done", "task_status": "success"}
        resp = await c.get("/crashed")
        assert resp.status == 503 and await resp.json() == {"error": "cannot work", "status": "crashed"}
    finally:
        await c.close()
