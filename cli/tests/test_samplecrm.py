"""The demo CRM on a real loopback port, and the agent specs the stack renders to point at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from trunkline.agents import load_agent_spec
from trunkline.cli.plan import CRM_SPEC_ORIGIN, crm_data, rebase_agent
from trunkline.cli.samplecrm import Crm, make_app
from trunkline.cli.stack import render_agents

pytestmark = pytest.mark.integration

AGENTS = Path(__file__).resolve().parents[2] / "agents"


@pytest.fixture
async def crm_url() -> AsyncIterator[str]:
    crm = Crm.load(AGENTS / "acme-dental" / "crm.json")
    runner = web.AppRunner(make_app(crm))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_lookup_book_and_appointments(crm_url: str) -> None:
    async with aiohttp.ClientSession(crm_url) as http:
        async with http.post("/tools/lookup_account", json={"account_id": "441729"}) as r:
            assert r.status == 200
            account = await r.json()
        assert account["found"] is True
        assert account["name"] == "Dana Whitfield"
        assert account["balance_usd"] == 45.0
        assert account["next_appointment"].startswith("check-up and cleaning on Tuesday")
        async with http.post("/tools/lookup_account", json={"account_id": "999999"}) as r:
            assert (await r.json())["found"] is False
        booking = {"account_id": "318804", "service": "whitening", "start": "2026-12-09T09:00"}
        async with http.post("/tools/book_appointment", json=booking) as r:
            booked = await r.json()
        assert booked["booked"] is True
        async with http.get("/accounts/318804/appointments") as r:
            listed = await r.json()
        assert [(a["appointment_id"], a["patient"]) for a in listed["appointments"]] == [
            (booked["appointment_id"], "Priya Natarajan")
        ]
        async with http.get("/accounts/000000/appointments") as r:
            assert (await r.json())["appointments"] == []


async def test_bad_requests_are_400_with_the_reason(crm_url: str) -> None:
    async with aiohttp.ClientSession(crm_url) as http:
        async with http.post("/tools/lookup_account", data=b"not json") as r:
            assert r.status == 400
            assert (await r.json())["error"] == "the body must be a JSON object"
        async with http.post("/tools/book_appointment", json={"account_id": "441729"}) as r:
            assert r.status == 400
            assert "service is required" in (await r.json())["error"]


def test_the_rendered_specs_point_at_the_stacks_crm(tmp_path: Path) -> None:
    assert crm_data(AGENTS) == AGENTS / "acme-dental" / "crm.json"
    written = render_agents(AGENTS, tmp_path, CRM_SPEC_ORIGIN, "http://127.0.0.1:41234")
    assert [p.name for p in written] == ["acme-dental.yaml", "volt-energy.yaml"]
    out = written[0]
    spec = load_agent_spec(out)
    assert spec.tool("lookup_account").endpoint == ("http://127.0.0.1:41234/tools/lookup_account")
    source = spec.retrieval.live_source("appointments")
    assert source.url_template == "http://127.0.0.1:41234/accounts/{account_id}/appointments"
    original = load_agent_spec(AGENTS / "acme-dental.yaml")
    assert spec.model_copy(update={"tools": original.tools, "retrieval": original.retrieval}) == (
        original
    )
    # Each agent's knowledge sits beside its rendered spec (the gateway's STT vocabulary).
    knowledge = tmp_path / "acme-dental" / "knowledge"
    assert knowledge.resolve() == (AGENTS / "acme-dental" / "knowledge").resolve()
    render_agents(AGENTS, tmp_path, CRM_SPEC_ORIGIN, "http://127.0.0.1:41234")  # again: no error
    assert (knowledge / "acme-dental-faq" / "hours-and-location.md").is_file()


def test_only_urls_on_the_crm_origin_move() -> None:
    spec: dict[str, Any] = {
        "tools": [
            {"name": "a", "endpoint": "http://127.0.0.1:8090/tools/a"},
            {"name": "b", "endpoint": "https://billing.example/tools/b"},
            {"name": "c", "endpoint": "http://127.0.0.1:80901/x"},
        ],
        "retrieval": {"live_sources": [{"name": "s", "base_url": "http://127.0.0.1:8090"}]},
        "greeting": "hi",
    }
    moved = rebase_agent(spec, "http://127.0.0.1:8090", "http://127.0.0.1:5555/")
    assert [t["endpoint"] for t in moved["tools"]] == [
        "http://127.0.0.1:5555/tools/a",
        "https://billing.example/tools/b",
        "http://127.0.0.1:80901/x",
    ]
    assert moved["retrieval"]["live_sources"][0]["base_url"] == "http://127.0.0.1:5555"
    assert moved["greeting"] == "hi"
    assert spec["tools"][0]["endpoint"] == "http://127.0.0.1:8090/tools/a"  # not mutated
