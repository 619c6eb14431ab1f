"""Transfer a live phone call elsewhere (the admin ``Transfer`` RPC): for teams on phones, the
alternative to the warm handoff. Twilio: the call is updated with new TwiML (``<Dial>`` to a
number or a SIP URI); Twilio then ends the media stream and the session ends as transferred.

``dial_twiml`` is pure; :class:`CallControl` is the provider ABC (Twilio's REST API over httpx
here: ``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json``, basic auth with the
account SID and auth token, form-encoded ``Twiml``).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from xml.sax.saxutils import escape

import httpx

from trunkline.gateway.settings import TenantConfig

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
SIP = re.compile(r"^sips?:[^\s<>&\"']+@[^\s<>&\"']+$")
TWILIO_API = "https://api.twilio.com"


class TransferError(Exception):
    """The transfer was refused (bad target, unknown account) or failed at the provider."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def dial_twiml(*, number: str = "", sip_uri: str = "", say: str = "") -> str:
    """TwiML that (optionally) says ``say`` and dials a number (E.164) or a SIP URI."""
    if bool(number) == bool(sip_uri):
        raise TransferError("give exactly one of a phone number or a SIP URI")
    if number and not E164.match(number):
        raise TransferError(f"phone number must be E.164 (e.g. +15551234567), got {number!r}")
    if sip_uri and not SIP.match(sip_uri):
        raise TransferError(f"SIP URI must look like sip:user@host, got {sip_uri!r}")
    target = escape(number) if number else f"<Sip>{escape(sip_uri)}</Sip>"
    spoken = f"<Say>{escape(say)}</Say>" if say else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Response>{spoken}<Dial>{target}</Dial></Response>'
    )


class CallControl(ABC):
    """A telephony provider's control of a live call."""

    @abstractmethod
    async def redirect(self, tenant: str, call_sid: str, twiml: str) -> None:
        """Replace what the call does with ``twiml`` (TransferError when refused/failed)."""


@dataclass(frozen=True, slots=True)
class TwilioAccount:
    account_sid: str
    auth_token: str


class TwilioCallControl(CallControl):
    """Twilio's REST API (``api_url`` points at a stand-in in tests)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        accounts: Mapping[str, TwilioAccount],
        api_url: str = TWILIO_API,
        timeout_s: float = 5.0,
    ) -> None:
        self.http = http
        self.accounts = accounts
        self.api_url = api_url.rstrip("/")
        self.timeout_s = timeout_s

    async def redirect(self, tenant: str, call_sid: str, twiml: str) -> None:
        account = self.accounts.get(tenant)
        if account is None or not account.account_sid or not account.auth_token:
            raise TransferError(
                f"tenant {tenant!r} has no Twilio account configured "
                "(twilio_account_sid and twilio_auth_token in GATEWAY_TENANTS)"
            )
        url = f"{self.api_url}/2010-04-01/Accounts/{account.account_sid}/Calls/{call_sid}.json"
        try:
            response = await self.http.post(
                url,
                data={"Twiml": twiml},
                auth=(account.account_sid, account.auth_token),
                timeout=self.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise TransferError(f"Twilio unreachable: {exc!r}", retryable=True) from exc
        if response.status_code >= 400:
            status = response.status_code
            raise TransferError(
                f"Twilio refused the call update: HTTP {status}: {_message(response)}",
                retryable=response.status_code >= 500 or response.status_code == 429,
            )


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return f"{body.get('code', '')} {body.get('message', '')}".strip()
    return str(body)[:200]


def twilio_accounts(tenants: Mapping[str, TenantConfig]) -> dict[str, TwilioAccount]:
    """The tenants that configured a Twilio account SID (with their auth token)."""
    return {
        name: TwilioAccount(cfg.twilio_account_sid, cfg.twilio_auth_token.get_secret_value())
        for name, cfg in tenants.items()
        if cfg.twilio_account_sid
    }
