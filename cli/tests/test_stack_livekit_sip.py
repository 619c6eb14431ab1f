"""LiveKit SIP in the local stack (issue 14): ``trunkline up`` starts it beside the LiveKit server
on ports of its own with the stack's Redis, makes each of the local tenant's agents reachable at
the SIP number and the next ones (an inbound trunk and a dispatch rule each, by the gateway's
route maker) and prints the SIP URIs; ``down`` stops it with the rest. Only the parts SIP needs
are started here (Redis, LiveKit, LiveKit SIP): no models."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest
from livekit import api as livekit_api
from livekit.protocol import sip

from trunkline.cli.plan import LIVEKIT_PORTS
from trunkline.cli.record import load
from trunkline.cli.settings import StackSettings
from trunkline.cli.stack import _Starter, down
from trunkline.cli.stack_livekit import LIVEKIT_SIP, agent_numbers, sip_lines, sip_route_argv
from trunkline.devservers import pid_alive
from trunkline.devservers.gotools import ToolMissingError, find_tool
from trunkline.devservers.livekit_sip import sip_options

AGENTS = Path(__file__).resolve().parents[2] / "agents"


@pytest.mark.unit
def test_the_sip_port_is_the_stacks_own_and_the_route_maker_is_the_gateways() -> None:
    assert LIVEKIT_SIP in LIVEKIT_PORTS
    argv = sip_route_argv("acme", "acme-dental", "+15550100")
    assert argv[1:3] == ["-m", "trunkline.gateway.livekit_sip"]
    assert argv[3:] == ["--tenant", "acme", "--agent", "acme-dental", "--number", "+15550100",
                        "--allow", "127.0.0.1/32"]  # fmt: skip


@pytest.mark.integration
def test_up_starts_livekit_sip_makes_the_route_and_prints_the_uri(tmp_path: Path) -> None:
    for name in ("livekit-server", "livekit-sip"):
        try:
            find_tool(name)
        except ToolMissingError as exc:
            pytest.skip(str(exc))
    settings = StackSettings(run_dir=tmp_path, agents_dir=AGENTS)
    out = io.StringIO()
    starter = _Starter(settings, out)
    try:
        starter.tenants()
        redis_url = starter.redis()
        starter.livekit(redis_url)
        starter.livekit_sip(redis_url)
        record = load(tmp_path)
        assert record is not None
        component = record.get(LIVEKIT_SIP)
        assert component is not None
        assert component.pid is not None
        assert component.port == starter.ports[LIVEKIT_SIP]
        assert sip_options("127.0.0.1", component.port).startswith("SIP/2.0 200")
        # one route per agent of the local tenant, at the SIP number and the next one
        assert [line.split("   ")[0] for line in starter.sip_lines] == [
            f"sip caller: sip:+15550100@127.0.0.1:{component.port}",
            f"sip caller: sip:+15550101@127.0.0.1:{component.port}",
        ]
        volt = starter.sip_lines[1].split("   ")[1]
        assert volt.startswith("(UDP/TCP, G.711; to acme/volt-energy, rooms acme.volt-energy._")
        made = [
            json.loads(chunk.splitlines()[0])
            for chunk in out.getvalue().split(f"{LIVEKIT_SIP} route ")[1:]
        ]
        assert [m["name"] for m in made] == [
            "trunkline:acme.acme-dental",
            "trunkline:acme.volt-energy",
        ]
        server = starter.livekit_server
        assert server is not None
        rules = asyncio.run(_rules(server.url, server.api_key, server.api_secret))
        assert rules == {
            made[0]["rule_id"]: "acme.acme-dental.",
            made[1]["rule_id"]: "acme.volt-energy.",
        }
        pid = component.pid
    finally:
        down(settings, io.StringIO())
    assert not pid_alive(pid)
    assert load(tmp_path) is None


@pytest.mark.unit
def test_each_agent_gets_the_next_number() -> None:
    agents = ("acme-dental", "volt-energy", "zeta")
    assert agent_numbers("+15550100", agents) == [
        ("acme-dental", "+15550100"),
        ("volt-energy", "+15550101"),
        ("zeta", "+15550102"),
    ]
    assert agent_numbers("0099", agents[:2]) == [("acme-dental", "0099"), ("volt-energy", "0100")]
    with pytest.raises(ValueError, match="do not fit"):
        agent_numbers("+998", agents)
    with pytest.raises(ValueError, match="digits"):
        agent_numbers("+1555-0100", agents)


@pytest.mark.unit
def test_sip_lines_name_the_number_tenant_and_agent() -> None:
    class FakeSip:
        host, port, rtp_ports = "127.0.0.1", 5070, "30000-30019"

        def uri(self, number: str) -> str:
            return f"sip:{number}@{self.host}:{self.port}"

    lines = sip_lines(FakeSip(), "+15550100", "acme", "acme-dental")  # type: ignore[arg-type]
    assert lines == [
        "sip caller: sip:+15550100@127.0.0.1:5070   (UDP/TCP, G.711; to acme/acme-dental, rooms "
        "acme.acme-dental._<caller>_<id>; RTP ports 30000-30019)"
    ]


async def _rules(url: str, key: str, secret: str) -> dict[str, str]:
    lkapi = livekit_api.LiveKitAPI(url, key, secret)
    try:
        listed = await lkapi.sip.list_dispatch_rule(sip.ListSIPDispatchRuleRequest())
    finally:
        await lkapi.aclose()
    return {
        rule.sip_dispatch_rule_id: rule.rule.dispatch_rule_individual.room_prefix
        for rule in listed.items
    }
