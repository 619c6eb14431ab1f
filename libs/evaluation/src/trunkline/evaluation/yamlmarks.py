"""YAML that remembers where things are: mappings and lists carry the line of each entry.

PyYAML's safe loader keeps a mark on every node while it composes the document; the plain
constructors then drop them. :func:`load_marked` builds :class:`MarkedMap` / :class:`MarkedList`
instead, so a scenario loader can say ``file:line`` for a bad value, and it refuses duplicate
keys (the plain loader keeps the last one silently).
"""

from __future__ import annotations

from typing import Any

import yaml


class YamlError(ValueError):
    """Text that is not valid YAML (or repeats a key); ``line`` is 1-based, 0 when unknown."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class MarkedMap(dict[str, Any]):
    """A mapping with the line of the mapping (``line``) and of each key (``lines[key]``)."""

    line: int
    lines: dict[str, int]


class MarkedList(list[Any]):
    """A list with the line of the list (``line``) and of each item (``lines[i]``)."""

    line: int
    lines: list[int]


class _Loader(yaml.SafeLoader):
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> MarkedMap:
    loader.flatten_mapping(node)
    out = MarkedMap()
    out.line = node.start_mark.line + 1
    out.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            key = str(key)
        if key in out:
            raise YamlError(f"duplicate key {key!r} (first on line {out.lines[key]})", line)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = line
    return out


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> MarkedList:
    out = MarkedList(loader.construct_object(item, deep=True) for item in node.value)
    out.line = node.start_mark.line + 1
    out.lines = [item.start_mark.line + 1 for item in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def load_marked(text: str) -> Any:
    """Parse one YAML document; mappings and lists come back marked with their lines."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise YamlError(f"not valid YAML: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"not valid YAML: {exc}", 0) from None
