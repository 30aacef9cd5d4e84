"""Faust records built without a trip through each field's descriptor.

A Faust ``Record``'s generated ``__init__`` sets every field through its
``FieldDescriptor.__set__`` (a Python call each: ``prepare_value``, the tag), about
5 µs for a :class:`~yadtq_app.records.TaskEvent`, paid for every task a bulk
submission carries, several times. For a record whose fields neither coerce nor are
tagged, that is the identity: :func:`build` fills the instance's ``__dict__`` as the
``__init__`` would, in a seventh of the time, with the same checks (an unknown or a
missing field is a ``TypeError``) and the same result (``None`` for a field with a
default means the default).
"""

from __future__ import annotations

from typing import Any, Mapping, TypeVar

import faust

__all__ = ["build"]

R = TypeVar("R", bound=faust.Record)

#: Per record class: its defaults, its required fields, all its fields.
_PLANS: dict[type, tuple[dict[str, Any], frozenset[str], frozenset[str]]] = {}


def build(cls: type[R], fields: Mapping[str, Any]) -> R:
    """``cls(**fields)``, without the descriptors' calls.

    Raises :class:`TypeError` for a field ``cls`` lacks or a required one missing, as
    ``cls(**fields)`` does, and :class:`ValueError` for a class whose fields do more
    than store their value (coercion, tags, validation, ``__post_init__``)."""
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = _plan(cls)
    defaults, required, known = plan
    if not known.issuperset(fields) or not required.issubset(fields):
        unknown = sorted(set(fields) - known) or sorted(required - set(fields))
        raise TypeError(f"{cls.__name__}: unknown or missing field {unknown[0]!r}")
    record = object.__new__(cls)
    values = record.__dict__
    values["__evaluated_fields__"] = set()
    values.update(defaults)
    for name, value in fields.items():
        if value is not None or name in required:
            values[name] = value
    return record


def _plan(cls: type[faust.Record]) -> tuple[dict[str, Any], frozenset[str], frozenset[str]]:
    options = cls._options
    special = [name for name, field in options.descriptors.items()
               if getattr(field, "coerce", True) or getattr(field, "tag", True) is not None]
    if special or options.validation or hasattr(cls, "__post_init__"):
        raise ValueError(f"{cls.__name__}: its fields do more than store a value ({', '.join(special) or 'hooks'})")
    defaults = dict(options.defaults)
    return defaults, frozenset(options.fields) - set(defaults), frozenset(options.fields)
