"""The LiveKit caller page's routes without a LiveKit server: the page and its scripts are served,
bad join requests are refused with the reason and send no agent anywhere, and a good one gets a
token for a new room of that tenant and agent (the agent's join is then only attempted)."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer

from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.livekit_app import with_livekit
from trunkline.gateway.livekit_dispatch import LiveKitDispatch
from trunkline.gateway.livekit_page import ASSETS, LiveKitPage
from trunkline.gateway.livekit_rooms import key_table
from trunkline.gateway.settings import GatewaySettings, TenantConfig
from trunkline.gateway.transports.base import CallStart, Transport
from trunkline.gateway.web import GatewayWeb, TenantAuth

pytestmark = pytest.mark.unit

AUTH = TenantAuth("twilio-token", "stream-secret", frozenset({"support"}))
SECRET = "s" * 40


async def never(start: CallStart, transport: Transport) -> None:
    raise AssertionError("no call runs in these tests")


@pytest.fixture
async def client() -> AsyncIterator[tuple[TestClient, LiveKitDispatch]]:  # type: ignore[type-arg]
    web_ = GatewayWeb({"acme": AUTH, "keyless": AUTH}, never, clock=SystemClock(), public_url="")
    keys = key_table("devkey", SECRET, {"acme": ("", "")})
    dispatch = LiveKitDispatch(web_, "ws://127.0.0.1:9", keys, connect_timeout_s=0.5)
    app = web_.app()
    dispatch.add_routes(app)
    LiveKitPage(dispatch, public_url="ws://livekit.example", softphone_url="/softphone").add_routes(
        app
    )
    async with TestClient(TestServer(app)) as http:
        yield http, dispatch
    for task in list(dispatch.rooms.values()):
        task.cancel()
    await asyncio.gather(*dispatch.rooms.values(), return_exceptions=True)


async def test_the_page_is_served_with_its_scripts_and_escapes_its_query(
    client: tuple[TestClient, LiveKitDispatch],  # type: ignore[type-arg]
) -> None:
    http, _ = client
    resp = await http.get("/livekit/call", params={"tenant": "acme", "agent": '"><script>'})
    page = await resp.text()
    assert resp.status == 200
    assert 'value="acme"' in page
    assert "&quot;&gt;&lt;script&gt;" in page
    assert '<a href="/softphone">' in page
    resp = await http.get("/livekit/static/call.js")
    assert resp.status == 200
    assert "LivekitClient" in await resp.text()
    resp = await http.get("/livekit/static/secrets.txt")
    assert resp.status == 404
    vendored = ASSETS["livekit-client.umd.js"]
    resp = await http.get("/livekit/static/livekit-client.umd.js")
    if vendored.is_file():
        assert resp.status == 200
        assert len(await resp.read()) == vendored.stat().st_size
    else:
        assert resp.status == 404
        assert "make tools" in await resp.text()


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"not json", 400, "body is not JSON"),
        (b"[1, 2]", 400, "body must be a JSON object"),
        (b'{"tenant": "acme"}', 400, '"tenant" and "agent" must be non-empty strings'),
        (b'{"tenant": "nobody", "agent": "support"}', 404, "unknown tenant 'nobody'"),
        (b'{"tenant": "acme", "agent": "sales"}', 404, "unknown agent 'sales'"),
        (b'{"tenant": "acme.x", "agent": "support"}', 404, "is not named"),
        (b'{"tenant": "keyless", "agent": "support"}', 404, "has no LiveKit API key"),
        (b"x" * 5000, 400, "<= 4096 bytes"),
    ],
)
async def test_bad_joins_are_refused_with_the_reason(
    client: tuple[TestClient, LiveKitDispatch],  # type: ignore[type-arg]
    body: bytes,
    status: int,
    reason: str,
) -> None:
    http, dispatch = client
    resp = await http.post("/livekit/join", data=body)
    assert resp.status == status
    assert reason in (await resp.json())["error"]
    assert dispatch.rooms == {}  # no agent sent anywhere


async def test_a_join_gets_a_caller_token_for_a_new_room_and_sends_the_agent(
    client: tuple[TestClient, LiveKitDispatch],  # type: ignore[type-arg]
) -> None:
    http, dispatch = client
    resp = await http.post("/livekit/join", json={"tenant": "acme", "agent": "support"})
    grant = await resp.json()
    assert resp.status == 200
    assert grant["url"] == "ws://livekit.example"
    assert grant["room"].startswith("acme.support.")
    claims = jwt.decode(grant["token"], SECRET, algorithms=["HS256"])
    assert claims["video"]["roomJoin"] is True
    assert claims["video"]["room"] == grant["room"]
    assert "agent" not in claims["video"]  # a caller, not an agent
    assert claims["sub"].startswith("caller-")
    assert claims["exp"] - claims["nbf"] <= datetime.timedelta(minutes=15).total_seconds()
    assert list(dispatch.rooms) == [grant["room"]]  # the agent is on its way
    other = await (
        await http.post("/livekit/join", json={"tenant": "acme", "agent": "support"})
    ).json()
    assert other["room"] != grant["room"]
    dispatch.web.draining = True
    resp = await http.post("/livekit/join", json={"tenant": "acme", "agent": "support"})
    assert resp.status == 503


async def test_the_gateway_settings_give_the_page_its_urls() -> None:
    settings = GatewaySettings(
        livekit_url="ws://127.0.0.1:9",
        livekit_public_url="wss://lk.example",
        softphone_url="https://console.example/softphone",
        livekit_api_key="devkey",
        livekit_api_secret=SECRET,
    )
    web_ = GatewayWeb({"acme": AUTH}, never, clock=SystemClock(), public_url="")
    tenants = {"acme": TenantConfig(stream_secret="s", agents=["support"])}
    app = with_livekit(web_.app(), web_, settings, tenants)
    async with TestClient(TestServer(app)) as http:  # (its worker retries the dead URL quietly)
        page = await (await http.get("/livekit/call")).text()
        assert 'href="https://console.example/softphone"' in page
        resp = await http.post("/livekit/join", json={"tenant": "acme", "agent": "support"})
        assert (await resp.json())["url"] == "wss://lk.example"
        for task in list(web_.calls):
            task.cancel()
