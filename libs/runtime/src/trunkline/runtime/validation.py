"""Pure request checks applied to every RPC before a handler sees the request."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

CALL_CONTEXT = "trunkline.common.v1.CallContext"
"""Full name of the per-call context message that carries the tenant."""

_MAX_DEPTH = 2


def tenant_problem(message: object) -> str | None:
    """Return why ``message`` must be refused for a missing tenant, or ``None`` when it is fine.

    A request that has a ``trunkline.common.v1.CallContext`` field must carry a non-empty
    ``tenant_id`` in it. The field is looked for on the message itself and, for envelopes such as
    the first message of a client stream (``oneof { Config config; bytes audio; }``), inside the
    message fields that are set, two levels deep. Messages without such a field pass.
    """
    if not isinstance(message, Message):
        return None
    return _problem(message, message.DESCRIPTOR.full_name, 0)


def _problem(message: Message, path: str, depth: int) -> str | None:
    for field in message.DESCRIPTOR.fields:
        if not _is_call_context(field):
            continue
        context = getattr(message, field.name)
        if not getattr(context, "tenant_id", ""):
            return f"{path}.{field.name}.tenant_id is required (a request must name its tenant)"
        return None
    if depth >= _MAX_DEPTH:
        return None
    for field, value in message.ListFields():
        if _is_singular_message(field) and isinstance(value, Message):
            found = _problem(value, f"{path}.{field.name}", depth + 1)
            if found is not None:
                return found
    return None


def _is_call_context(field: Any) -> bool:
    return (
        _is_singular_message(field)
        and field.message_type is not None
        and field.message_type.full_name == CALL_CONTEXT
    )


def _is_singular_message(field: Any) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and not field.is_repeated
