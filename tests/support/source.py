"""Faust's and aiokafka's own source, read as text, for the canaries that watch it.

Read as text, not with ``inspect.getsource``: on CPython 3.11 its AST parse can raise
"AST constructor recursion depth mismatch" after deep recursion elsewhere in the
process (python/cpython#106905).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Optional

__all__ = ["class_source", "method_source", "method_statements"]


def class_source(klass: type) -> Optional[str]:
    """The text of ``klass``'s body in its module's file (``None``: built in or compiled)."""
    try:
        lines = Path(inspect.getfile(klass)).read_text().splitlines()
    except (OSError, TypeError):
        return None
    header = re.compile(rf"^class {re.escape(klass.__name__)}\b")
    for i, line in enumerate(lines):
        if header.match(line):
            end = next((j for j in range(i + 1, len(lines))
                        if lines[j] and not lines[j][0].isspace() and not lines[j].startswith("#")), len(lines))
            return "\n".join(lines[i:end])
    return None


def method_source(klass: type, name: str) -> str:
    """The text of method ``name`` defined in ``klass``'s body, up to the next method.

    Raises ``ValueError`` if the class body has no such method."""
    body = class_source(klass)
    if body is None:
        raise ValueError(f"no source for {klass!r}")
    found = re.search(rf"^    (async )?def {re.escape(name)}\(", body, re.MULTILINE)
    if found is None:
        raise ValueError(f"{klass.__name__} defines no {name}")
    following = re.compile(r"^    (async )?def |^    @", re.MULTILINE).search(body, found.end())
    return body[found.start():following.start() if following else len(body)]


def method_statements(klass: type, name: str) -> str:
    """The statements of method ``name`` of ``klass``, one a line, stripped, without its
    signature, docstring and comments."""
    body = re.sub(r'"""(.|\n)*?"""', "", method_source(klass, name))
    lines = [line.split("#", 1)[0].strip() for line in body.splitlines()[1:]]
    return "\n".join(line for line in lines if line)
