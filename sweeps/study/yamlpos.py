"""YAML with positions: every key and item remembers ``file:line:column`` for errors,
and ``Section`` reads one mapping of it with typed, positioned checks."""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import yaml

from pretrain.sizes import SIZES
from pretrain.store import parse_tokens

Path_ = tuple[Any, ...]

# PyYAML follows YAML 1.1, where a float needs a dot: ``3e-4`` and ``1e6`` load as strings. A
# researcher writes them as numbers, so a plain (unquoted) scalar in YAML 1.2's float syntax
# is read as a float; a quoted "3e-4" stays a string.
_YAML12_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")


class StudyError(ValueError):
    """A study file that cannot be run: the message names the file position and key."""


class Positions:
    """Where each key path of a loaded YAML document came from."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.marks: dict[Path_, yaml.Mark] = {}

    def at(self, path: Path_) -> str:
        """``file:line:col`` of ``path`` or of its nearest ancestor that has a mark."""
        while path and path not in self.marks:
            path = path[:-1]
        mark = self.marks.get(path)
        return f"{self.file}:{mark.line + 1}:{mark.column + 1}" if mark else self.file

    def error(self, path: Path_, message: str) -> StudyError:
        key = ".".join(str(p) for p in path) or "<top>"
        return StudyError(f"{self.at(path)}: {key}: {message}")


def load_yaml(path: str | Path, what: str = "study file") -> tuple[Any, Positions]:
    """Parse ``path`` into plain Python data plus the position of every key and item."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"{what} not found: {path}")
    pos = Positions(str(path))
    text = path.read_text()
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise StudyError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if root is None:
        raise StudyError(f"{path}: the {what} is empty")
    _refuse_tags(text, path, what)
    loader = yaml.SafeLoader("")
    return _to_python(root, (), pos, loader), pos


def _refuse_tags(text: str, path: Path, what: str) -> None:
    """A study file is plain data: any explicit tag (``!!python/...``, ``!!float``, ``!x``) is
    an error, so nothing is silently reinterpreted or ignored."""
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        tag = getattr(event, "tag", None)
        if tag is not None and not isinstance(event, yaml.DocumentStartEvent):
            mark = event.start_mark
            raise StudyError(f"{path}:{mark.line + 1}:{mark.column + 1}: YAML tag {tag!r} is not "
                             f"allowed in a {what}; write the plain value")


def _to_python(node: yaml.Node, path: Path_, pos: Positions, loader: yaml.SafeLoader) -> Any:
    pos.marks.setdefault(path, node.start_mark)
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node)
            if key in out:
                raise pos.error(path + (key,), "duplicate key")
            pos.marks[path + (key,)] = key_node.start_mark
            out[key] = _to_python(value_node, path + (key,), pos, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, path + (i,), pos, loader) for i, item in enumerate(node.value)]
    value = loader.construct_object(node)
    if isinstance(value, str) and node.style is None and _YAML12_FLOAT.fullmatch(value):
        return float(value)
    return value


def as_number(pos: Positions, path: Path_, value: Any, kind: type = float) -> int | float:
    """The one rule for a number in a study file: an int or float (``true`` is not 1, and a
    quoted ``"8"`` is a string), an integer where ``kind`` is int, and finite. Both the
    hand-written sections (``Section.number``) and the schema-read ones use it."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise pos.error(path, f"expected {'an integer' if kind is int else 'a number'}, got {value!r}")
    if kind is int and value != int(value):
        raise pos.error(path, f"expected an integer, got {value!r}")
    if not math.isfinite(value):
        raise pos.error(path, f"must be a finite number, got {value!r}")
    return kind(value)


class Section:
    """Reads one mapping of a study file, checking types and refusing unknown keys."""

    def __init__(self, data: Any, path: tuple, pos: Positions) -> None:
        if not isinstance(data, dict):
            raise pos.error(path, f"expected a mapping, got {type(data).__name__}")
        self.data, self.path, self.pos, self.seen = data, path, pos, set()

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        return self.data.get(key, default)

    def number(self, key: str, kind: type = float, default: Any = None, allow_zero: bool = False,
               value: Any = None, path: tuple | None = None) -> Any:
        path = path or self.path + (key,)
        v = self.raw(key, default) if value is None else value
        if v is None:
            if default is None and value is None:
                raise self.pos.error(path, "is required")
            return v
        num = as_number(self.pos, path, v, kind)
        if num < 0 or (num == 0 and not allow_zero):
            raise self.pos.error(path, f"must be {'>= 0' if allow_zero else 'positive'}, got {v!r}")
        return num

    def tokens(self, key: str, value: Any, path: tuple) -> int:
        try:
            return parse_tokens(value)
        except ValueError as e:
            raise self.pos.error(path, str(e)) from None

    def size(self, value: Any, path: tuple, custom: Collection[str] = ()) -> str:
        """A size name: a registered size, or one of the study's ``custom`` sizes."""
        if value is None:
            raise self.pos.error(path, "is required: a model size")
        if not isinstance(value, str) or (value not in SIZES and value not in custom):
            known = ", ".join(dict.fromkeys([*SIZES, *custom]))
            raise self.pos.error(path, f"unknown model size {value!r}; known: {known}")
        return value

    def choice(self, key: str, options: tuple, default: Any) -> Any:
        v = self.raw(key, default)
        if v not in options:
            raise self.pos.error(self.path + (key,), f"{v!r} is not one of {', '.join(map(str, options))}")
        return v

    def sub(self, key: str) -> Section:
        return Section(self.raw(key, {}), self.path + (key,), self.pos)

    def items(self, key: str) -> list[tuple[Any, tuple]]:
        v = self.raw(key, [])
        if not isinstance(v, list):
            raise self.pos.error(self.path + (key,), "expected a list")
        return [(item, self.path + (key, i)) for i, item in enumerate(v)]

    def unique(self, key: str, values: Sequence[Any], empty: str = "") -> tuple:
        """``values``, read from list ``key`` in order, refused at the first one listed twice
        (a repeat would plan the same runs twice), and when empty unless ``empty`` is ''
        (then it says what to do instead)."""
        if not values and empty and self.has(key):
            raise self.pos.error(self.path + (key,), f"an empty list: {empty}")
        first: dict[Any, int] = {}
        for i, v in enumerate(values):
            if v in first:
                also = ".".join(str(k) for k in (*self.path, key, first[v]))
                raise self.pos.error(self.path + (key, i), f"{v!r} is listed twice (also as {also})")
            first[v] = i
        return tuple(values)

    def done(self) -> None:
        unknown = [k for k in self.data if k not in self.seen]
        if unknown:
            raise self.pos.error(self.path + (unknown[0],), "unknown key")
