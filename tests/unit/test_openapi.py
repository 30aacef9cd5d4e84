"""GET /openapi.json: a valid OpenAPI 3.1 document naming every route the app serves."""

from __future__ import annotations

import importlib
from typing import Any, Iterable

import pytest
from aiohttp import web
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from yadtq_app.openapi import ROUTES, document

#: aiohttp (through Faust) answers HEAD wherever it answers GET; not an operation of its own.
IMPLICIT = {"HEAD"}


def registered(router: Any) -> set[tuple[str, str]]:
    """(METHOD, path template) of every route on an aiohttp router, HEAD aside."""
    return {(r.method, r.resource.canonical) for r in router.routes() if r.method not in IMPLICIT}


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}


def undocumented(routes: Iterable[tuple[str, str]], doc: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted(set(routes) - documented(doc))


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document(version="1.2.3")
    validate(doc, cls=OpenAPIV31SpecValidator)
    assert doc["openapi"].startswith("3.1") and doc["info"]["version"] == "1.2.3"


def test_the_validator_refuses_a_broken_document() -> None:
    doc = document(version="1")
    doc["paths"]["/tasks"]["post"]["responses"]["202"]["content"]["application/json"]["schema"] = {
        "$ref": "#/components/schemas/NoSuchSchema"}
    with pytest.raises(Exception, match="NoSuchSchema"):
        validate(doc, cls=OpenAPIV31SpecValidator)


def test_every_route_of_the_app_is_documented_and_every_documented_route_exists() -> None:
    from yadtq_app.application import AUTODISCOVER, app

    for module in AUTODISCOVER:  # what a worker imports: every module that registers views
        importlib.import_module(module)
    served = registered(app.web.web_app.router)
    doc = document(version="1")
    assert ("POST", "/tasks") in served and ("GET", "/openapi.json") in served  # the probe sees the app's views
    assert undocumented(served, doc) == []
    assert sorted(documented(doc) - served) == []


def test_a_route_without_an_entry_is_found() -> None:
    """The control case: the comparison above fails for a route the table lacks."""
    extra = web.Application()

    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    extra.router.add_get("/tasks", handler)
    extra.router.add_post("/tasks/{task_id}/pause", handler)
    assert undocumented(registered(extra.router), document(version="1")) == [
        ("GET", "/tasks"), ("POST", "/tasks/{task_id}/pause")]


def test_error_answers_and_503s_are_documented() -> None:
    doc = document(version="1")
    for route in ROUTES:
        responses = doc["paths"][route.path][route.method]["responses"]
        if route.body is not None or "{task_id}" in route.path:
            assert "400" in responses, route
        if "503" in responses:
            assert responses["503"]["headers"]["Retry-After"]["required"] is True, route
    assert "503" in doc["paths"]["/health"]["get"]["responses"]
    assert "503" in doc["paths"]["/tasks"]["post"]["responses"]
