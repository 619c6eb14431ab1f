"""Room names -> tenant/agent, and the API key table (which key may dispatch whose rooms)."""

from __future__ import annotations

import re

import pytest

from trunkline.gateway.livekit_rooms import (
    LiveKitKey,
    RoomRefusedError,
    key_for_tenant,
    key_table,
    parse_room,
)

pytestmark = pytest.mark.unit

AGENTS = {"acme": frozenset({"acme-dental", "support"}), "globex": frozenset({"sales"})}


def test_a_room_names_its_tenant_agent_and_call() -> None:
    target = parse_room("acme.acme-dental.4f9c_2A", AGENTS)
    assert (target.tenant, target.agent) == ("acme", "acme-dental")
    assert target.call_id == "livekit-acme~acme-dental~4f9c_2A"  # no "." in a NATS token


@pytest.mark.parametrize(
    ("room", "reason"),
    [
        ("nobody.support.1", "unknown tenant 'nobody'"),
        ("acme.sales.1", "unknown agent 'sales' for tenant 'acme'"),
        ("acme.support", "is not named '<tenant>.<agent>.<call id>'"),
        ("acme.support.a.b", "is not named"),
        ("acme.support.", "is not named"),
        ("acme.sup port.1", "is not named"),
        ("acme.support." + "x" * 65, "is not named"),
        ("", "is not named"),
    ],
)
def test_bad_rooms_are_refused_with_the_reason(room: str, reason: str) -> None:
    with pytest.raises(RoomRefusedError, match=re.escape(reason)):
        parse_room(room, AGENTS)


def test_tenants_share_the_default_key_unless_they_have_their_own() -> None:
    keys = key_table(
        "default",
        "d" * 32,
        {"acme": ("", ""), "initech": ("", ""), "globex": ("globex-key", "g" * 32)},
    )
    assert keys["default"] == LiveKitKey("default", "d" * 32, frozenset({"acme", "initech"}))
    assert keys["globex-key"].tenants == frozenset({"globex"})
    assert key_for_tenant(keys, "globex") == keys["globex-key"]
    assert key_for_tenant(keys, "acme") == keys["default"]
    assert key_for_tenant(keys, "nobody") is None


def test_no_default_key_leaves_such_tenants_without_livekit() -> None:
    keys = key_table("", "", {"acme": ("", ""), "globex": ("k", "s" * 32)})
    assert list(keys) == ["k"]


def test_a_key_without_secret_or_with_two_secrets_is_refused() -> None:
    with pytest.raises(ValueError, match="tenant 'acme': LiveKit API key 'k' has no secret"):
        key_table("", "", {"acme": ("k", "")})
    with pytest.raises(ValueError, match="'k' is given with two different secrets"):
        key_table("", "", {"acme": ("k", "a" * 32), "globex": ("k", "b" * 32)})
