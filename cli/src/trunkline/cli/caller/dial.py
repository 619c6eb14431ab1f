"""Where and how to dial: the stream URL and the ``start`` message's custom parameters.

Two ways, both as Twilio does it:
- **webhook**: POST the call's form to the gateway's TwiML webhook, signed with the tenant's
  Twilio auth token (``X-Twilio-Signature``), and take the ``<Stream url>`` and its
  ``<Parameter>``s (tenant, agent, per-call token) from the TwiML answer;
- **direct**: connect to the stream URL with tenant/agent and a token given as-is, or derived
  from the tenant's stream secret (``trunkline.telephony.stream_token``, as the gateway checks).
Where the auth parameters travel is configurable: custom parameters, URL query, or both.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from xml.etree import ElementTree

import aiohttp

from trunkline.telephony import stream_token, twilio_signature

TokenIn = Literal["parameters", "query", "both"]


class DialError(RuntimeError):
    """The call could not be placed; the text says why."""


def sid(prefix: str) -> str:
    """A Twilio-shaped id: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class CallIdentity:
    call_sid: str = field(default_factory=lambda: sid("CA"))
    stream_sid: str = field(default_factory=lambda: sid("MZ"))
    account_sid: str = "AC" + "0" * 32
    caller: str = "+15005550006"
    callee: str = "+15005550001"


@dataclass(frozen=True, slots=True)
class StreamTarget:
    url: str
    parameters: dict[str, str]


def with_query(url: str, extra: Mapping[str, str]) -> str:
    if not extra:
        return url
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *extra.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


def place_auth(
    url: str, auth: Mapping[str, str], extra: Mapping[str, str], token_in: TokenIn
) -> StreamTarget:
    """Put the auth parameters where ``token_in`` says; ``extra`` always goes in parameters."""
    parameters = dict(extra)
    if token_in in ("parameters", "both"):
        parameters.update(auth)
    query = dict(auth) if token_in in ("query", "both") else {}
    return StreamTarget(with_query(url, query), parameters)


def direct_target(
    url: str,
    identity: CallIdentity,
    *,
    tenant: str,
    agent: str,
    token: str | None = None,
    stream_secret: str | None = None,
    token_in: TokenIn = "parameters",
    extra: Mapping[str, str] | None = None,
) -> StreamTarget:
    if token is None and stream_secret is not None:
        role = (extra or {}).get("caller_role") or "caller"
        token = stream_token(stream_secret, tenant, agent, identity.call_sid, role=role)
    auth = {"tenant": tenant, "agent": agent}
    if token is not None:
        auth["token"] = token
    base = {"from": identity.caller, "to": identity.callee, **(extra or {})}
    return place_auth(url, auth, base, token_in)


def parse_twiml(xml: str) -> StreamTarget:
    """``<Response><Connect><Stream url=..><Parameter name value/>..`` -> the stream target."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise DialError(f"webhook answer is not TwiML: {exc}") from None
    stream = root.find("./Connect/Stream")
    if stream is None or not stream.get("url"):
        raise DialError("webhook TwiML has no <Connect><Stream url=...>")
    parameters = {
        p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter") if p.get("name")
    }
    return StreamTarget(stream.get("url", ""), parameters)


def webhook_form(identity: CallIdentity) -> dict[str, str]:
    """The form Twilio posts when a call comes in."""
    return {
        "AccountSid": identity.account_sid,
        "ApiVersion": "2010-04-01",
        "CallSid": identity.call_sid,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": identity.caller,
        "To": identity.callee,
    }


async def webhook_target(
    session: aiohttp.ClientSession,
    webhook_url: str,
    auth_token: str,
    identity: CallIdentity,
    *,
    token_in: TokenIn = "parameters",
    timeout_s: float = 10.0,
) -> StreamTarget:
    form = webhook_form(identity)
    headers = {"X-Twilio-Signature": twilio_signature(auth_token, webhook_url, form)}
    try:
        async with session.post(
            webhook_url, data=form, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as response:
            body = await response.text()
            if response.status != 200:
                raise DialError(f"webhook {webhook_url} answered {response.status}: {body[:200]}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DialError(f"webhook {webhook_url} unreachable: {exc!r}") from None
    target = parse_twiml(body)
    auth_keys = ("tenant", "agent", "token")
    auth = {k: v for k, v in target.parameters.items() if k in auth_keys}
    extra = {k: v for k, v in target.parameters.items() if k not in auth_keys}
    return place_auth(target.url, auth, extra, token_in)
