"""Task ids: the allowed set, and the round trip through a URL path segment."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from yadtq_app.ids import MAX_ID_LENGTH, id_problem, quote_id, unquote_id

VALID = ["a", "12345abc", "a/b", "..", ".", "%", "%2e", "%2F", "%ff", "a b", "#?&=+;:@", "日本語", "😀",
         "e\u0301", "x" * MAX_ID_LENGTH, "😀" * MAX_ID_LENGTH, "/cancel", "a?wait=1#frag"]


@pytest.mark.parametrize("task_id", VALID)
def test_a_valid_id_survives_a_url_path(task_id: str) -> None:
    assert id_problem(task_id) is None
    segment = quote_id(task_id)
    assert set(segment) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_~%")
    # What an HTTP client sends is what the server reads back (no normalisation of dots).
    raw = httpx.Request("GET", f"http://h/tasks/{segment}/retry").url.raw_path.decode()
    assert unquote_id(urlsplit(raw).path.split("/")[2]) == task_id


@pytest.mark.parametrize("value", [None, 5, "", "x" * (MAX_ID_LENGTH + 1), "a\x00", "a\x1f", "\x7f", "a\x9fb",
                                   "\ud800", "a\udfff"])
def test_what_is_not_an_id(value: object) -> None:
    assert id_problem(value) is not None
    assert "'task-id'" in str(id_problem(value))


@pytest.mark.parametrize("segment", ["%ff", "%C3%28", "a%80", "%ED%A0%80", "%F0%9F%98", "", "%00", "x" * 201])
def test_a_segment_that_names_no_valid_id_is_refused(segment: str) -> None:
    with pytest.raises(ValueError):
        unquote_id(segment)


def test_unquote_id_is_strict_about_percent_signs() -> None:
    assert unquote_id("%25ff") == "%ff"
    assert unquote_id("%2e%2E") == ".."
    assert unquote_id("a%2Fb") == "a/b"
    assert unquote_id("a+b") == "a+b"  # a path, not a form


def test_every_character_of_the_basic_plane_is_judged_by_the_rule() -> None:
    # The rule of the module docs, character by character, against the whole plane:
    # the first forbidden character is the one named.
    for code in range(0x10000):
        c = chr(code)
        control = code < 0x20 or 0x7F <= code <= 0x9F
        surrogate = 0xD800 <= code <= 0xDFFF
        problem = id_problem(f"ok{c}\x01")
        if control:
            assert problem == f"'task-id' must not contain control characters (found U+{code:04X})"
        elif surrogate:
            assert problem == f"'task-id' must not contain a lone surrogate (found U+{code:04X}): it has no UTF-8 form"
        else:
            assert problem == "'task-id' must not contain control characters (found U+0001)", code
