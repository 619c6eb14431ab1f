"""Request authentication: Twilio's webhook signature and the per-tenant stream token."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """Twilio's ``X-Twilio-Signature``: base64(HMAC-SHA1(token, url + each sorted key+value)).

    ``url`` is the full URL Twilio requested, query string included; ``params`` the POST form.
    """
    payload = url + "".join(f"{key}{params[key]}" for key in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def valid_twilio_signature(
    auth_token: str, url: str, params: Mapping[str, str], signature: str | None
) -> bool:
    if not signature:
        return False
    return hmac.compare_digest(twilio_signature(auth_token, url, params), signature)


DEFAULT_ROLE = "caller"


def stream_token(
    secret: str, tenant: str, agent: str, call_id: str, *, role: str = DEFAULT_ROLE
) -> str:
    """The token the webhook puts on the stream it starts; binds tenant, agent, call and the
    caller's role (a role other than the default is part of the signed message, so a stream
    parameter ``caller_role`` counts only when whoever holds the secret granted it)."""
    message = f"{tenant}\n{agent}\n{call_id}"
    if role != DEFAULT_ROLE:
        message += f"\n{role}"
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def valid_stream_token(
    secret: str, tenant: str, agent: str, call_id: str, token: str, *, role: str = DEFAULT_ROLE
) -> bool:
    if not token:
        return False
    return hmac.compare_digest(stream_token(secret, tenant, agent, call_id, role=role), token)
