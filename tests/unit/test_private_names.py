"""Canary: every private Faust/aiokafka name yadtq touches exists on the pinned versions.

``yadtq_app.kafka.private`` lists them (:data:`ACCESSED`, :data:`OVERRIDDEN`); an upgrade
that renames or drops one fails here, instead of silently skipping a fix.
"""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any

import pytest

from tests.support.source import class_source
from yadtq_app.kafka import private

NAMES = [*private.ACCESSED, *private.OVERRIDDEN]


def defines(owner: Any, name: str) -> bool:
    """Whether ``owner`` (a module or class) has ``name``: as an attribute (a class's
    through its MRO, annotations included) or, for an instance attribute, assigned as
    ``self.<name>`` in the source of a class in its MRO."""
    if isinstance(owner, types.ModuleType):
        return name in vars(owner)
    for klass in owner.__mro__:
        if name in vars(klass) or name in getattr(klass, "__annotations__", {}):
            return True
    assigned = re.compile(rf"\bself\.{re.escape(name)}\s*(:[^=\n]*)?=[^=]")
    for klass in owner.__mro__:
        if klass is object:
            continue
        source = class_source(klass)
        if source is not None and assigned.search(source):
            return True
    return False


@pytest.mark.parametrize("owner, name", NAMES, ids=[f"{getattr(o, '__qualname__', o.__name__)}.{n}" for o, n in NAMES])
def test_private_name_exists_on_the_pinned_version(owner: Any, name: str) -> None:
    assert defines(owner, name), f"{owner!r} has no {name!r} any more: see yadtq_app/kafka/private.py"


def test_the_probe_can_fail() -> None:
    # A control case: names that do not exist are reported missing, on a class and a module.
    from faust.transport import consumer as faust_consumer

    assert not defines(faust_consumer.Consumer, "_committed_offsett")
    assert not defines(faust_consumer, "_no_such_name")
    assert defines(faust_consumer.Consumer, "_committed_offset")  # instance attribute, from __init__'s source


def test_every_private_attribute_in_private_py_is_listed() -> None:
    # private.py reaches a private name only if ACCESSED lists it (names of its own aside).
    source = Path(private.__file__).read_text()
    used = set(re.findall(r"[\w)\]]\.(_[a-z]\w*)", source))
    used |= set(re.findall(r"(?:getattr|hasattr)\([^,]+, \"(_\w+)\"", source))
    listed = {name for _, name in private.ACCESSED}
    assert used and used <= listed, used - listed


def test_every_overridden_private_hook_is_listed() -> None:
    # Each private method a yadtq subclass of a Faust/aiokafka class defines is in OVERRIDDEN.
    from yadtq_app.application import YadtqApp
    from yadtq_app.faust_worker import Worker
    from yadtq_app.fencing import FencedTable
    from yadtq_app.kafka.consumer import Consumer
    from yadtq_app.kafka.thread import ConsumerThread

    listed = {name for _, name in private.OVERRIDDEN}
    for klass in (YadtqApp, Worker, FencedTable, Consumer, ConsumerThread):
        library = [base for base in klass.__mro__ if base.__module__.split(".")[0] in ("faust", "aiokafka", "mode")]
        ours = [base for base in klass.__mro__ if base.__module__.startswith("yadtq_app.")]  # mix-ins too
        overridden = {name for own in ours for name in vars(own) if name.startswith("_") and not name.startswith("__")
                      and name != "_abc_impl"  # abc's own, on every class
                      and any(name in vars(base) for base in library)}
        assert overridden <= listed, (klass, overridden - listed)
