"""LiveKit rooms and keys: which tenant and agent a room is for, and who may dispatch it (pure).

A room name says whom the caller wants: ``<tenant>.<agent>.<call id>`` (for example
``acme-dental.receptionist.4f9c2a``). Tenant and agent are names the gateway knows (its tenants
and their agents); the call id is any non-empty run of ``[A-Za-z0-9_-]`` chosen by whoever creates
the room (a SIP dispatch rule's room prefix, the web page that mints the caller's token) and
becomes the call's id (``livekit-<tenant>~<agent>~<call id>``: NATS subjects take no '.').

API keys: ``GATEWAY_LIVEKIT_API_KEY``/``GATEWAY_LIVEKIT_API_SECRET`` is the pair the gateway uses
for every tenant without one of its own; a tenant's ``livekit_api_key``/``livekit_api_secret``
(``GATEWAY_TENANTS``) replace it for that tenant (its own LiveKit project). A webhook signed with
a tenant's own key may only dispatch rooms of that tenant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

ROOM_RE = re.compile(r"^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{1,64})$")


class RoomRefusedError(ValueError):
    """A room the gateway will not join; the text says why (logged as is)."""


@dataclass(frozen=True, slots=True)
class RoomTarget:
    room: str
    tenant: str
    agent: str
    call_id: str


@dataclass(frozen=True, slots=True)
class LiveKitKey:
    """One API key pair and the tenants whose rooms it may dispatch and join."""

    api_key: str
    api_secret: str
    tenants: frozenset[str]


def parse_room(room: str, agents: Mapping[str, frozenset[str]]) -> RoomTarget:
    """The tenant/agent ``room`` is for, or ``RoomRefusedError`` naming what is wrong.
    ``agents``: tenant -> its agents."""
    match = ROOM_RE.match(room)
    if match is None:
        raise RoomRefusedError(
            f"room {room!r} is not named '<tenant>.<agent>.<call id>' ([A-Za-z0-9_-] each part)"
        )
    tenant, agent, _call = match.groups()
    known = agents.get(tenant)
    if known is None:
        raise RoomRefusedError(f"room {room!r}: unknown tenant {tenant!r}")
    if agent not in known:
        raise RoomRefusedError(f"room {room!r}: unknown agent {agent!r} for tenant {tenant!r}")
    # NATS subject tokens (events carry the call id) cannot hold '.'.
    return RoomTarget(
        room=room, tenant=tenant, agent=agent, call_id=f"livekit-{room}".replace(".", "~")
    )


def key_table(
    default_key: str, default_secret: str, tenant_keys: Mapping[str, tuple[str, str]]
) -> dict[str, LiveKitKey]:
    """API key -> its pair and tenants. ``tenant_keys``: tenant -> (key, secret), an empty key
    meaning the default pair. A key given twice with different secrets is refused."""
    tenants_of: dict[str, set[str]] = {}
    secrets: dict[str, str] = {}
    for tenant, own in tenant_keys.items():
        key, secret = own if own[0] else (default_key, default_secret)
        if not key:
            continue  # no LiveKit for this tenant
        if not secret:
            raise ValueError(f"tenant {tenant!r}: LiveKit API key {key!r} has no secret")
        if secrets.setdefault(key, secret) != secret:
            raise ValueError(f"LiveKit API key {key!r} is given with two different secrets")
        tenants_of.setdefault(key, set()).add(tenant)
    return {
        key: LiveKitKey(key, secrets[key], frozenset(tenants))
        for key, tenants in tenants_of.items()
    }


def key_for_tenant(keys: Mapping[str, LiveKitKey], tenant: str) -> LiveKitKey | None:
    return next((key for key in keys.values() if tenant in key.tenants), None)
