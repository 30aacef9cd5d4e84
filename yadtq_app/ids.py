"""Task ids: which strings may be one, and how one travels in a URL.

A task id is any string of 1 to :data:`MAX_ID_LENGTH` characters without control
characters (U+0000–U+001F, U+007F–U+009F) or lone surrogates (they have no UTF-8
form, and the id is the task's Kafka key as UTF-8). Everything else is allowed:
``/ ? # % & = + ; : @``, dots, spaces, any Unicode.

In a URL an id is one path segment, its UTF-8 bytes percent-encoded with every
character but ASCII letters, digits, ``-``, ``_`` and ``~`` escaped
(:func:`quote_id`; dots too, so ``.`` and ``..`` are not read as relative paths).
A server reads it back from the *raw* path with :func:`unquote_id`, never from a
decoded path, in which ``%2F`` and ``/`` or ``%3F`` and ``?`` look alike.
"""

from __future__ import annotations

import re
from typing import Any, Optional
from urllib.parse import quote, unquote_to_bytes

__all__ = ["MAX_ID_LENGTH", "id_problem", "quote_id", "unquote_id"]

#: The longest task id (and ordering key), in characters.
MAX_ID_LENGTH = 200

#: The characters an id must not hold: controls (C0, DEL, C1) and lone surrogates.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def id_problem(value: Any, *, name: str = "task-id") -> Optional[str]:
    """Why ``value`` cannot be a task id (a sentence naming ``name``); ``None`` if it can."""
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        return f"'{name}' must be a non-empty string of at most {MAX_ID_LENGTH} characters"
    found = _FORBIDDEN.search(value)
    if found is None:
        return None
    code = ord(found.group())
    if code < 0xD800:
        return f"'{name}' must not contain control characters (found U+{code:04X})"
    return f"'{name}' must not contain a lone surrogate (found U+{code:04X}): it has no UTF-8 form"


def quote_id(task_id: str) -> str:
    """``task_id`` as one URL path segment (see the module docs)."""
    return quote(task_id, safe="").replace(".", "%2E")


def unquote_id(segment: str) -> str:
    """The task id a raw URL path segment names; ValueError (with the reason) if it
    is not percent-encoded UTF-8 or not a valid id."""
    try:
        task_id = unquote_to_bytes(segment).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"the task id in the path is not percent-encoded UTF-8: {segment[:80]!r}") from None
    problem = id_problem(task_id)
    if problem is not None:
        raise ValueError(problem)
    return task_id
