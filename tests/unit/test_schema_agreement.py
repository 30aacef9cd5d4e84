"""The wire format and the published schema agree on every submission.

``POST /tasks`` checks a submission with the wire format only
(:func:`yadtq_app.wire.task_request_from_json`); the OpenAPI document publishes
``TaskSubmission``. Whatever the wire format accepts, the schema must accept too
(generated bodies, near the edges of each field). The wire format may refuse more: an
``eta`` more than a year ahead, which no schema can say.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_api_schema import wire_refuses
from yadtq_app.api_schema import MAX_DELAY, MAX_RETRIES, MAX_TIMEOUT, problem

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False, allow_infinity=False),
                     st.text(max_size=4))
_json = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=3), inner, max_size=3)),
                     max_leaves=6)
_numbers = st.one_of(st.integers(-2, 2), st.floats(-1.0, 2.0), st.sampled_from(
    [0, 0.0, MAX_RETRIES, MAX_RETRIES + 1, MAX_TIMEOUT, MAX_TIMEOUT + 1, MAX_DELAY, MAX_DELAY + 1, 1e300]))
_ids = st.one_of(st.none(), st.text(max_size=5), st.sampled_from(["", " ", "a" * 300, "a/b", "\x00", "ok-id"]))

FIELDS: dict[str, Any] = {
    "task-id": st.one_of(_ids, _json),
    "task_id": st.one_of(_ids, _json),
    "task": st.one_of(st.sampled_from(["add", "", "x" * 400]), _json),
    "args": st.one_of(st.none(), st.lists(_scalars, max_size=3), _json),
    "kwargs": st.one_of(st.none(), st.dictionaries(st.text(max_size=3), _scalars, max_size=3), _json),
    "submitted_at": _json,
    "max_retries": st.one_of(st.none(), _numbers, _json),
    "timeout": st.one_of(st.none(), _numbers, _json),
    "countdown": st.one_of(st.none(), _numbers, _json),
    "eta": st.one_of(st.none(), _numbers, st.sampled_from(["2030-01-01T00:00:00Z", "soon", ""]), _json),
    "ordering_key": st.one_of(_ids, _json),
    "surprise": _json,
}


@st.composite
def bodies(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 20)) == 0:
        return draw(_json)  # not even an object, sometimes
    names = draw(st.lists(st.sampled_from(sorted(FIELDS)), unique=True, max_size=6))
    body = {name: draw(FIELDS[name]) for name in names}
    if draw(st.booleans()):
        body["task"] = "add"
    return body


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
def test_what_the_wire_format_accepts_keeps_to_the_schema(body: Any) -> None:
    if not wire_refuses(body):
        assert problem("TaskSubmission", body) is None, body
