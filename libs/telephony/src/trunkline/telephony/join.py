"""Short-lived join tokens for an operator's audio leg: the hitl service signs one when an
operator takes a call over (``TakeOver``), the gateway's ``POST /webrtc/operator`` checks it.

Format: ``v1.<expires_unix>.<tenant>.<ticket_id>.<operator_id>.<hex HMAC-SHA256>``, the MAC over
everything before it, keyed with the secret both services share (``HITL_JOIN_SECRET`` /
``GATEWAY_JOIN_SECRET``). Every part is a NATS-style token, so ``.`` never appears inside one.
One home for the format: both services import it from here.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class JoinGrant:
    tenant_id: str
    ticket_id: str
    operator_id: str
    expires_at: int


def _mac(secret: bytes, body: str) -> str:
    return hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()


def sign_join(secret: bytes, grant: JoinGrant) -> str:
    for part in (grant.tenant_id, grant.ticket_id, grant.operator_id):
        if not part or "." in part:
            raise ValueError(f"join token part {part!r} must be non-empty without '.'")
    body = f"v1.{grant.expires_at}.{grant.tenant_id}.{grant.ticket_id}.{grant.operator_id}"
    return f"{body}.{_mac(secret, body)}"


def verify_join(secret: bytes, token: str, now: float) -> JoinGrant:
    """The grant in ``token``; ValueError when it is malformed, forged or expired."""
    parts = token.split(".")
    if len(parts) != 6 or parts[0] != "v1":
        raise ValueError("malformed join token")
    body, mac = ".".join(parts[:5]), parts[5]
    if not hmac.compare_digest(_mac(secret, body), mac):
        raise ValueError("join token signature does not match")
    try:
        expires_at = int(parts[1])
    except ValueError:
        raise ValueError("malformed join token expiry") from None
    if now >= expires_at:
        raise ValueError("join token expired")
    return JoinGrant(parts[2], parts[3], parts[4], expires_at)
