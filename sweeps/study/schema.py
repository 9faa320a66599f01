"""Typed, frozen config objects from YAML sections: one reader for every section.

A config is a frozen dataclass. Its fields' type hints say what a key may hold, its defaults
are the defaults (written once, there), and ``field(metadata=...)`` adds bounds. ``read``
takes one mapping of a study or profile file (a ``Section``, which knows every key's
``file:line:col``) and returns the keyword arguments of the dataclass for the keys present,
checked; ``build`` constructs the object and turns a ``ValueError`` of its own checks into a
positioned one-line error as well.

Supported hints: ``int``, ``float``, ``str``, ``bool``, ``X | None``, ``tuple[X, ...]`` and
``Mapping[str, scalar]``. Metadata: ``{"min": v}`` (at least v), ``{"positive": True}``, or
``{"choices": (...)}`` for a string.
Booleans are never numbers here: ``cpus: yes`` is a mistake, not 1.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from sweeps.study.yamlpos import Section, StudyError, as_number

T = TypeVar("T")
SCALARS = (str, int, float, bool)


def hints(cls: type) -> dict[str, Any]:
    """Field name -> resolved type hint of a dataclass (string annotations included)."""
    return typing.get_type_hints(cls)


def read(sec: Section, cls: type, *, only: Iterable[str] | None = None,
         required: Iterable[str] = (), what: str = "key") -> dict[str, Any]:
    """Checked values of ``cls``'s fields present in ``sec`` (and refusal of any other key).

    ``only`` limits the fields a file may set; ``required`` lists keys that must be there
    even where the dataclass has a default.
    """
    types_of = hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if only is None or f.name in set(only)}
    for key in sec.data:
        if key not in fields:
            raise sec.pos.error(sec.path + (key,), f"unknown {what}; known: {', '.join(sorted(fields))}")
    out = {}
    for name, f in fields.items():
        if not sec.has(name):
            if name in set(required):
                raise sec.pos.error(sec.path + (name,), "is required")
            continue
        out[name] = _value(sec, name, sec.raw(name), types_of[name], dict(f.metadata), sec.path + (name,))
    sec.done()
    return out


def build(sec: Section, cls: type[T], values: Mapping[str, Any]) -> T:
    """``cls(**values)``, its own ``ValueError`` positioned at the field it names (or at the
    section when it names none)."""
    try:
        return cls(**values)
    except ValueError as e:
        message = str(e)
        raise sec.pos.error(sec.path + named_key(message, values), message) from None


def named_key(message: str, keys: Iterable[str]) -> tuple[str, ...]:
    """The key an error message is about: the first one it names as a word, or none."""
    words = f" {message} ".replace(",", " ").replace(":", " ")
    found = [(words.find(f" {k} "), k) for k in keys if f" {k} " in words]
    return (min(found)[1],) if found else ()


def _value(sec: Section, name: str, value: Any, hint: Any, meta: dict, path: tuple) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _value(sec, name, value, inner[0], meta, path)
        if all(a in SCALARS for a in inner) and isinstance(value, tuple(inner)):
            return value
        raise sec.pos.error(path, f"expected {' or '.join(a.__name__ for a in inner)}, got {value!r}")
    if origin is tuple:
        if not isinstance(value, list):
            raise sec.pos.error(path, f"expected a list, got {value!r}")
        return tuple(_value(sec, name, v, args[0], meta, path + (i,)) for i, v in enumerate(value))
    if origin in (Mapping, dict) or hint in (Mapping, dict):
        if not isinstance(value, dict):
            raise sec.pos.error(path, f"expected a mapping, got {value!r}")
        for k, v in value.items():
            if not isinstance(k, str) or not isinstance(v, SCALARS):
                raise sec.pos.error(path + (k,), f"expected a name and a string, number or true, got {v!r}")
        return types.MappingProxyType(dict(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise sec.pos.error(path, f"expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str) or not value.strip():
            raise sec.pos.error(path, f"expected a non-empty string, got {value!r}")
        if "choices" in meta and value not in meta["choices"]:
            raise sec.pos.error(path, f"{value!r} is not one of {', '.join(meta['choices'])}")
        return value
    if hint in (int, float):
        return _number(sec, value, hint, meta, path)
    raise TypeError(f"{name}: unsupported config type {hint!r}")  # a programming error


def _number(sec: Section, value: Any, kind: type, meta: dict, path: tuple) -> int | float:
    number = as_number(sec.pos, path, value, kind)
    if meta.get("positive") and not number > 0:
        raise sec.pos.error(path, f"must be positive, got {value!r}")
    if "min" in meta and number < meta["min"]:
        raise sec.pos.error(path, f"must be {meta['min']} or more, got {value!r}")
    return number


__all__ = ["StudyError", "build", "hints", "read"]
