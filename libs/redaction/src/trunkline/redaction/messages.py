"""Redaction of structured payloads at the edge of a sink: protobuf events, attribute maps.

Every string field is redacted except identifiers and names that carry no caller words (ids,
tenant, agent and tool names, roles, stage names). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from trunkline.redaction.pii import Entity, Known, redact, sensitive_digits

KEEP_FIELDS = frozenset(
    {
        "id",
        "name",
        "version",
        "role",
        "dialed",
        "stage",
        "component",
        "resource",
        "currency",
        "reply_source",
        "intent",
        "action",
        "kind",
        "status",
        "transport",
        "agent",
    }
)


def keep(name: str) -> bool:
    """True for a field or attribute name whose value is an identifier, never caller text."""
    leaf = name.rsplit(".", 1)[-1]
    return leaf in KEEP_FIELDS or leaf.endswith(("_id", "_ids")) or leaf in {"call", "tenant"}


def redact_message(
    message: Message, known: Known | None = None, only: frozenset[Entity] | None = None
) -> Message:
    """Redact ``message`` in place (every string field outside :func:`keep`); return it.

    Two passes: the personal numbers found anywhere in the message (the caller's words) are
    also redacted where another field repeats their bare digits (the agent's reply, a held-back
    clause). ``known``: the call's numbers so far; this message's are added to it. ``only``:
    just those entities (a copy that must keep the rest, see :func:`redact`)."""
    known = _collect(message, {} if known is None else known)
    _redact(message, known, only)
    return message


def _strings(message: Message) -> list[str]:
    out: list[str] = []
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING and not keep(field.name):
            out.extend(value if _repeated(field) else [value])
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if _is_map(field):
                out.extend(v for v in value.values() if isinstance(v, str))
                out.extend(s for v in value.values() if isinstance(v, Message) for s in _strings(v))
            elif _repeated(field):
                out.extend(s for item in value for s in _strings(item))
            else:
                out.extend(_strings(value))
    return out


def _collect(message: Message, known: Known) -> Known:
    for text in _strings(message):
        sensitive_digits(text, known)
    return known


def _redact(message: Message, known: Known, only: frozenset[Entity] | None = None) -> None:
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING:
            if keep(field.name):
                continue
            if _repeated(field):
                redacted = [redact(v, known, only) for v in value]
                del value[:]
                value.extend(redacted)
            else:
                setattr(message, field.name, redact(value, known, only))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if _is_map(field):
                _redact_map(field, value, known, only)
            elif _repeated(field):
                for item in value:
                    _redact(item, known, only)
            else:
                _redact(value, known, only)


def _repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _is_map(field: FieldDescriptor) -> bool:
    kind = field.message_type
    return kind is not None and bool(kind.GetOptions().map_entry)


def _redact_map(
    field: FieldDescriptor, value: Any, known: Known, only: frozenset[Entity] | None
) -> None:
    kind = field.message_type
    assert kind is not None
    value_field = kind.fields_by_name["value"]
    if value_field.type == FieldDescriptor.TYPE_STRING and not keep(field.name):
        for key in list(value):
            value[key] = redact(value[key], known, only)
    elif value_field.type == FieldDescriptor.TYPE_MESSAGE:
        for key in list(value):
            _redact(value[key], known, only)


def redact_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of span/log attributes with every string (and string list) value redacted."""
    out: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        if keep(key):
            out[key] = value
        elif isinstance(value, str):
            out[key] = redact(value)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            out[key] = type(value)(redact(v) for v in value)
        else:
            out[key] = value
    return out
