"""Stage 2, metadata filtering: one filter expression pushed into the vector search.

Tenant (the partition key), caller role and validity window become a Milvus boolean expression
the store evaluates *inside* the ANN search; nothing is filtered after the fact. Identifiers are
validated against a strict pattern before they are quoted, so no input can change the
expression's structure.
"""

from __future__ import annotations

import re

from trunkline.context.core.types import Caller, ChunkMeta

IDENT = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
"""Tenant ids, role names and agent ids: lower-case slugs (no quotes, wildcards or separators)."""

ANY_ROLE = "*"


def check_ident(kind: str, value: str) -> str:
    """Return ``value`` if it is a valid identifier, else raise ``ValueError`` naming ``kind``."""
    if not IDENT.match(value):
        raise ValueError(f"invalid {kind} {value!r}: expected a lower-case slug [a-z0-9_.-]")
    return value


def encode_roles(roles: tuple[str, ...]) -> str:
    """Roles as stored: ``|agent|admin|`` (``*`` for every role). Empty means nobody."""
    if not roles:
        raise ValueError("a chunk needs at least one allowed role (use '*' for every role)")
    for role in roles:
        if role != ANY_ROLE:
            check_ident("role", role)
    return "|" + "|".join(sorted(set(roles))) + "|"


def decode_roles(stored: str) -> tuple[str, ...]:
    return tuple(r for r in stored.split("|") if r)


def access_filter(caller: Caller) -> str:
    """The expression a chunk must satisfy to be visible to ``caller``."""
    tenant = check_ident("tenant", caller.tenant)
    role = check_ident("role", caller.role)
    return (
        f'tenant == "{tenant}"'
        f' and (roles like "%|{role}|%" or roles like "%|{ANY_ROLE}|%")'
        f" and valid_from <= {int(caller.now)} and valid_to > {int(caller.now)}"
    )


def visible(meta: ChunkMeta, caller: Caller) -> bool:
    """The same rule as :func:`access_filter`, in Python: used by fakes and by property tests."""
    allowed = caller.role in meta.roles or ANY_ROLE in meta.roles
    return (
        meta.tenant == caller.tenant and allowed and meta.valid_from <= caller.now < meta.valid_to
    )


def knowledge_base_filter(knowledge_bases: tuple[str, ...]) -> str:
    """Chunks of these knowledge bases only (a source is stored as ``<kb>/<source id>``).

    Empty: no restriction (an empty string, to be joined with ``and``).
    """
    if not knowledge_bases:
        return ""
    names = sorted({check_ident("knowledge base", kb) for kb in knowledge_bases})
    return "(" + " or ".join(f'source like "{kb}/%"' for kb in names) + ")"
