"""A live worker serves its OpenAPI document and docs page, and keeps to the document
under schemathesis: no 5xx, and every answer's status, type, headers and body as
documented."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

import yadtq_app
from yadtq_app.openapi import document

pytestmark = pytest.mark.integration

#: What schemathesis checks of every answer.
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance")
#: Generated requests per operation and phase: enough to find a 5xx or an undocumented
#: answer, few enough for the run to take well under a minute.
EXAMPLES = 15
#: The longest ``?wait=`` schemathesis may send (s): a long poll holds its request for
#: that long, and the document allows 60.
WAIT_BOUND = 0.5
#: The tasks the fuzzed cluster registers (quick, harmless with any arguments), named to
#: schemathesis so that its submissions get past ``unknown-task`` to the producer.
TASKS = ["add", "subtract", "multiply", "divide", "echo"]


def test_every_worker_serves_the_document_and_a_self_contained_docs_page(shared_cluster: Any) -> None:
    for w in shared_cluster.workers:
        resp = httpx.get(f"{w.url}/openapi.json", timeout=10)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
        validate(resp.json(), cls=OpenAPIV31SpecValidator)
        assert resp.json() == document(version=yadtq_app.__version__)
        page = httpx.get(f"{w.url}/docs", timeout=10)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '"/openapi.json"' in page.text
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page.text), "the page loads nothing remote"


def schemathesis(doc: dict[str, Any], url: str, workdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run ``st run`` on ``doc`` against ``url`` (its working files in ``workdir``)."""
    # One schemathesis worker: with threads, CPython 3.11's ast.parse (which hypothesis
    # calls to describe its strategies) sometimes fails with "AST constructor recursion
    # depth mismatch" (python/cpython#106905).
    path = workdir / "openapi.json"
    path.write_text(json.dumps(doc))
    cmd = [sys.executable, "-m", "schemathesis.cli", "run", str(path), "--url", url, "--checks", CHECKS,
           "--max-examples", str(EXAMPLES), "--request-timeout", "15", "--workers", "1", *extra]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=240,
                          env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"})


def for_fuzzing(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with ``?wait=`` bounded by :data:`WAIT_BOUND` and task names from :data:`TASKS`."""
    doc["components"]["schemas"]["TaskSubmission"]["properties"]["task"]["enum"] = TASKS
    for param in doc["paths"]["/tasks/{task_id}"]["get"]["parameters"]:
        if param["name"] == "wait":
            param["schema"]["maximum"] = WAIT_BOUND
            return doc
    raise AssertionError("GET /tasks/{task_id} has no 'wait' parameter to bound")


@pytest.mark.embedded_only  # the contract / terminal output does not depend on the broker
def test_schemathesis_finds_no_server_error_and_no_answer_unlike_the_document(cluster_factory: Any,
                                                                              tmp_path: Path) -> None:
    # Two workers: reads are routed between them.
    cluster = cluster_factory(extra_env={"YADTQ_TASK_MODULES": "yadtq_app.examples"}).start(2)
    url = cluster.workers[0].url
    doc = for_fuzzing(httpx.get(f"{url}/openapi.json", timeout=10).json())
    run = schemathesis(doc, url, tmp_path)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    operations = sum(len(ops) for ops in doc["paths"].values())
    assert re.search(rf"Tested:\s+{operations}\b", run.stdout), run.stdout[-3000:]  # every operation ran


@pytest.mark.embedded_only  # the contract / terminal output does not depend on the broker
def test_schemathesis_fails_on_an_answer_unlike_the_document(shared_cluster: Any, tmp_path: Path) -> None:
    """The control case: the same run fails when the document says what the worker does not do."""
    url = shared_cluster.workers[0].url
    doc = document(version="1")
    doc["components"]["schemas"]["Health"]["required"].append("no_such_field")
    run = schemathesis(doc, url, tmp_path, "--include-path", "/health", "--phases", "fuzzing")
    assert run.returncode != 0 and "no_such_field" in run.stdout, run.stdout[-3000:]
