"""YAML with positions: every key and item remembers ``file:line:column`` for errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[Any, ...]


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


def load_yaml(path: str | Path) -> tuple[Any, Positions]:
    """Parse ``path`` into plain Python data plus the position of every key and item."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"study file not found: {path}")
    pos = Positions(str(path))
    text = path.read_text()
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise StudyError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if root is None:
        raise StudyError(f"{path}: the study file is empty")
    loader = yaml.SafeLoader("")
    return _to_python(root, (), pos, loader), pos


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
    return loader.construct_object(node)
