"""The browser caller pages in the local stack (issue 14): with LiveKit up, ``trunkline up``
prints the gateway's LiveKit caller page (the local tenant and an agent filled in) and the
console's softphone, on the stack's own ports, and hands each service the other page's URL in
the setting it reads."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from trunkline.cli.plan import GATEWAY_HTTP, HITL_CONSOLE
from trunkline.cli.settings import StackSettings
from trunkline.cli.stack import _Starter
from trunkline.cli.stack_livekit import linked_pages_env, page_lines
from trunkline.gateway.settings import GatewaySettings
from trunkline.hitl.console.service import ConsoleSettings

pytestmark = pytest.mark.unit

AGENTS = Path(__file__).resolve().parents[2] / "agents"


def starter(tmp_path: Path) -> _Starter:
    started = _Starter(StackSettings(run_dir=tmp_path, agents_dir=AGENTS), io.StringIO())
    started.tenants()  # the local tenant, admitted to the sample agents
    return started


def test_up_prints_the_caller_page_and_the_softphone_on_the_stack_ports(tmp_path: Path) -> None:
    started = starter(tmp_path)
    gateway, console = started.ports[GATEWAY_HTTP], started.ports[HITL_CONSOLE]
    assert gateway != console
    lines = page_lines(started.ports, "acme", started.agents)
    assert lines == [
        f"livekit caller page: http://127.0.0.1:{gateway}/livekit/call?tenant=acme"
        "&agent=acme-dental   (agents: acme-dental, volt-energy)",
        f"console softphone: http://127.0.0.1:{console}/softphone",
    ]


def test_without_a_console_only_the_caller_page_is_printed() -> None:
    lines = page_lines({GATEWAY_HTTP: 9000}, "beta", ("solo",))
    assert lines == [
        "livekit caller page: http://127.0.0.1:9000/livekit/call?tenant=beta&agent=solo"
        "   (agents: solo)"
    ]
    assert linked_pages_env("gateway", {GATEWAY_HTTP: 9000}) == {}


def test_each_page_gets_the_other_in_the_setting_its_service_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = starter(tmp_path).ports
    for name, value in {
        **linked_pages_env("gateway", ports),
        **linked_pages_env("hitl", ports),
    }.items():
        monkeypatch.setenv(name, value)
    gateway = GatewaySettings()
    console = ConsoleSettings()
    assert gateway.softphone_url == f"http://127.0.0.1:{ports[HITL_CONSOLE]}/softphone"
    assert console.livekit_call_url == f"http://127.0.0.1:{ports[GATEWAY_HTTP]}/livekit/call"
    assert linked_pages_env("llm", ports) == {}
