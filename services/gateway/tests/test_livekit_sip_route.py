"""A tenant agent's LiveKit SIP route (pure): the trunk and rule requests ``make up`` sends, and
the room names LiveKit derives from the rule, which are of our ``<tenant>.<agent>.<id>`` scheme."""

from __future__ import annotations

import re

import pytest

from trunkline.gateway.livekit_rooms import parse_room
from trunkline.gateway.livekit_sip import SipRoute, SipRouteError, main, rule_request, trunk_request
from trunkline.gateway.livekit_worker import AGENT_NAME

pytestmark = pytest.mark.unit

ROUTE = SipRoute("acme", "acme-dental", ("+15550100",), ("127.0.0.1/32",))


def test_the_trunk_takes_the_agents_numbers_from_the_allowed_addresses() -> None:
    trunk = trunk_request(ROUTE).trunk
    assert trunk.name == "trunkline:acme.acme-dental"
    assert list(trunk.numbers) == ["+15550100"]
    assert list(trunk.allowed_addresses) == ["127.0.0.1/32"]


def test_a_trunk_with_digest_auth_carries_the_user_and_password_but_never_shows_it() -> None:
    route = SipRoute("acme", "acme-dental", ("+15550100",), (), "carrier", "s3cret-pass")
    trunk = trunk_request(route).trunk
    assert (trunk.auth_username, trunk.auth_password) == ("carrier", "s3cret-pass")
    assert "s3cret-pass" not in repr(route)
    assert trunk_request(ROUTE).trunk.auth_username == ""  # none: any caller from the CIDRs


def test_the_rule_names_rooms_of_our_scheme_for_this_trunk_only() -> None:
    rule = rule_request(ROUTE, "ST_abc").dispatch_rule
    assert rule.name == ROUTE.name
    assert list(rule.trunk_ids) == ["ST_abc"]
    assert rule.rule.dispatch_rule_individual.room_prefix == "acme.acme-dental."
    assert rule.hide_phone_number  # LiveKit then keeps only the last 4 digits in the room name
    assert [a.agent_name for a in rule.room_config.agents] == [AGENT_NAME]
    # what LiveKit names the room: prefix + "_" + last 4 digits + "_" + a random id
    room = f"{ROUTE.room_prefix}_0199_nGkDmz2bHp7xQ4"
    target = parse_room(room, {"acme": frozenset({"acme-dental"})})
    assert (target.tenant, target.agent) == ("acme", "acme-dental")


@pytest.mark.parametrize(
    ("tenant", "agent", "numbers", "reason"),
    [
        ("acme", "acme.dental", ("+1555",), "agent 'acme.dental' is not a room name part"),
        ("ac me", "support", ("+1555",), "tenant 'ac me' is not a room name part"),
        ("acme", "support", (), "a SIP route needs a number"),
        ("acme", "support", ("+1 555",), "bad number '+1 555'"),
    ],
)
def test_bad_routes_are_refused_with_the_reason(
    tenant: str, agent: str, numbers: tuple[str, ...], reason: str
) -> None:
    with pytest.raises(SipRouteError, match=re.escape(reason)):
        SipRoute(tenant, agent, numbers)


def test_the_route_maker_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("URL", "API_KEY", "API_SECRET"):
        monkeypatch.delenv(f"GATEWAY_LIVEKIT_{name}", raising=False)
    assert main(["--tenant", "acme", "--agent", "support", "--number", "+15550100"]) == 1
    assert "url" in capsys.readouterr().err
    assert main(["--tenant", "acme", "--agent", "sup.port", "--number", "+1555"]) == 1
    assert "not a room name part" in capsys.readouterr().err


def test_digest_auth_needs_both_and_the_password_only_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SipRouteError, match="a user and a password"):
        SipRoute("acme", "support", ("+1555",), (), "carrier", "")
    monkeypatch.setenv("GATEWAY_LIVEKIT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("GATEWAY_LIVEKIT_API_KEY", "k")
    monkeypatch.setenv("GATEWAY_LIVEKIT_API_SECRET", "s")
    monkeypatch.delenv("GATEWAY_LIVEKIT_SIP_AUTH_PASSWORD", raising=False)
    argv = ["--tenant", "acme", "--agent", "support", "--number", "+1555", "--auth-user", "c"]
    assert main(argv) == 1
    assert "a user and a password" in capsys.readouterr().err
