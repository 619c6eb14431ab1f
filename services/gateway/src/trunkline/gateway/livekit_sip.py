"""LiveKit SIP routes: what a phone call needs to reach a tenant's agent through LiveKit SIP.

LiveKit SIP answers an INVITE only when the LiveKit server matches it to an **inbound trunk**
(the numbers it serves, the addresses calls may come from) and a **dispatch rule** (which room
the call joins). One route per tenant agent, both named ``trunkline:<tenant>.<agent>``:

- the trunk takes the agent's ``numbers`` from ``allowed_addresses`` (CIDRs; empty: any) and,
  with ``auth_username``, only from a caller that answers LiveKit SIP's digest challenge (407,
  then the INVITE again with that user and ``auth_password``; a wrong password gets 401);
- the rule is *individual* (a room per call) with the room prefix ``<tenant>.<agent>.`` and the
  caller's number hidden: LiveKit names the room ``<tenant>.<agent>._<last 4 digits>_<random>``,
  a room of our scheme (``livekit_rooms.parse_room``), so the gateway's webhook dispatch joins it;
  the full number never lands in a room name (logged everywhere) and a ``+`` never in a call id.
  Its room configuration also names the agent ``trunkline`` (``livekit_worker.AGENT_NAME``): a
  gateway registered as an agent worker gets the job where no webhook is configured.
- The rule only applies to this trunk: an INVITE for a number no trunk serves is refused by
  LiveKit SIP (logged there with the number).

:func:`ensure_sip_route` makes the route exist as given (a trunk or rule of the same name is
replaced). ``python -m trunkline.gateway.livekit_sip --tenant T --agent A --number N`` (and
``--allow CIDR``, ``--auth-user U``) does it for ``make up`` and the chart's route Job, reading
the server and key from ``GATEWAY_LIVEKIT_URL`` / ``GATEWAY_LIVEKIT_API_KEY`` /
``GATEWAY_LIVEKIT_API_SECRET`` and the digest password from
``GATEWAY_LIVEKIT_SIP_AUTH_PASSWORD``, never an argument, which the process list would show
(:class:`SipRouteSettings`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from livekit import api as livekit_api
from livekit.api.sip_service import SipService
from livekit.protocol import agent_dispatch, room, sip
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from trunkline.gateway.livekit_worker import AGENT_NAME

NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
NUMBER_RE = re.compile(r"^\+?[0-9A-Za-z_.-]{1,32}$")


class SipRouteError(ValueError):
    """A route that cannot be made; the text says what is wrong."""


@dataclass(frozen=True, slots=True)
class SipRoute:
    """Calls to ``numbers`` (from ``allowed_addresses``) reach ``tenant``'s ``agent``."""

    tenant: str
    agent: str
    numbers: tuple[str, ...]
    allowed_addresses: tuple[str, ...] = ()
    auth_username: str = ""
    auth_password: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if bool(self.auth_username) != bool(self.auth_password):
            raise SipRouteError(
                f"{self.tenant}.{self.agent}: digest auth needs a user and a password, not one"
            )
        for what, value in (("tenant", self.tenant), ("agent", self.agent)):
            if not NAME_RE.match(value):
                raise SipRouteError(f"{what} {value!r} is not a room name part ([A-Za-z0-9_-])")
        if not self.numbers:
            raise SipRouteError(f"{self.tenant}.{self.agent}: a SIP route needs a number")
        for number in self.numbers:
            if not NUMBER_RE.match(number):
                raise SipRouteError(f"{self.tenant}.{self.agent}: bad number {number!r}")

    @property
    def name(self) -> str:
        return f"trunkline:{self.tenant}.{self.agent}"

    @property
    def room_prefix(self) -> str:
        return f"{self.tenant}.{self.agent}."


@dataclass(frozen=True, slots=True)
class SipRouteIds:
    trunk_id: str
    rule_id: str


def trunk_request(route: SipRoute) -> sip.CreateSIPInboundTrunkRequest:
    trunk = sip.SIPInboundTrunkInfo(
        name=route.name,
        numbers=list(route.numbers),
        allowed_addresses=list(route.allowed_addresses),
        auth_username=route.auth_username,
        auth_password=route.auth_password,
    )
    return sip.CreateSIPInboundTrunkRequest(trunk=trunk)


def rule_request(route: SipRoute, trunk_id: str) -> sip.CreateSIPDispatchRuleRequest:
    individual = sip.SIPDispatchRuleIndividual(room_prefix=route.room_prefix)
    rule = sip.SIPDispatchRuleInfo(
        name=route.name,
        rule=sip.SIPDispatchRule(dispatch_rule_individual=individual),
        trunk_ids=[trunk_id],
        hide_phone_number=True,
        room_config=room.RoomConfiguration(
            agents=[agent_dispatch.RoomAgentDispatch(agent_name=AGENT_NAME)]
        ),
    )
    return sip.CreateSIPDispatchRuleRequest(dispatch_rule=rule)


async def ensure_sip_route(service: SipService, route: SipRoute) -> SipRouteIds:
    """Create the route's trunk and rule, replacing any of the same name."""
    rules = await service.list_dispatch_rule(sip.ListSIPDispatchRuleRequest())
    for old_rule in rules.items:
        if old_rule.name == route.name:
            await service.delete_dispatch_rule(
                sip.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=old_rule.sip_dispatch_rule_id)
            )
    trunks = await service.list_inbound_trunk(sip.ListSIPInboundTrunkRequest())
    for old_trunk in trunks.items:
        if old_trunk.name == route.name:
            await service.delete_trunk(
                sip.DeleteSIPTrunkRequest(sip_trunk_id=old_trunk.sip_trunk_id)
            )
    trunk = await service.create_inbound_trunk(trunk_request(route))
    rule = await service.create_dispatch_rule(rule_request(route, trunk.sip_trunk_id))
    return SipRouteIds(trunk.sip_trunk_id, rule.sip_dispatch_rule_id)


class SipRouteSettings(BaseSettings):
    """The LiveKit server the routes are made on (the gateway's own LiveKit settings)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_LIVEKIT_", frozen=True, extra="ignore")

    url: str = Field(min_length=1, description="the LiveKit server (ws:// or http://)")
    api_key: str = Field(min_length=1)
    api_secret: SecretStr
    sip_auth_password: SecretStr = Field(
        default=SecretStr(""), description="the digest password of --auth-user"
    )


async def make_route(settings: SipRouteSettings, route: SipRoute) -> SipRouteIds:
    lkapi = livekit_api.LiveKitAPI(
        settings.url, settings.api_key, settings.api_secret.get_secret_value()
    )
    try:
        return await ensure_sip_route(lkapi.sip, route)
    finally:
        await lkapi.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Make a tenant agent's LiveKit SIP route")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--agent", required=True)
    parser.add_argument("--number", action="append", required=True, help="repeatable")
    parser.add_argument("--allow", action="append", default=[], help="CIDR calls may come from")
    parser.add_argument(
        "--auth-user",
        default="",
        help="digest auth user callers must answer LiveKit SIP's challenge with (the password: "
        "GATEWAY_LIVEKIT_SIP_AUTH_PASSWORD)",
    )
    args = parser.parse_args(argv)
    try:
        route = SipRoute(args.tenant, args.agent, tuple(args.number), tuple(args.allow))
        settings = SipRouteSettings()
        if args.auth_user:
            password = settings.sip_auth_password.get_secret_value()
            route = replace(route, auth_username=args.auth_user, auth_password=password)
        ids = asyncio.run(make_route(settings, route))
    except (SipRouteError, livekit_api.TwirpError, OSError, ValueError) as exc:
        print(f"livekit sip route: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"trunk_id": ids.trunk_id, "rule_id": ids.rule_id, "name": route.name}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
