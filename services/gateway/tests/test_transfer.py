"""The admin ``Transfer`` RPC against a stand-in with the shape of Twilio's REST API (POST
/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json, basic auth, form-encoded Twiml; Twilio's
error bodies): a live Twilio call is redirected to <Dial> and ends as transferred; bad targets,
other transports, unknown accounts and Twilio errors are clear gRPC errors."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import httpx
import pytest
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider

from trunkline.gateway.calls import LiveCalls
from trunkline.gateway.fakes import (
    EnergyDetector,
    FakeContext,
    FakeLanguageModel,
    FakeSynthesizer,
    FakeTranscriber,
    FakeTransport,
    RecordingSink,
)
from trunkline.gateway.fillers import FillerCache
from trunkline.gateway.peers.base import PeerEnv
from trunkline.gateway.peers.grpc_common import call_context
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.pipeline import Peers
from trunkline.gateway.server import GatewayAdminService, register
from trunkline.gateway.session import CallSession
from trunkline.gateway.transfer import (
    TransferError,
    TwilioAccount,
    TwilioCallControl,
    dial_twiml,
)
from trunkline.proto.gateway.v1 import admin_pb2, admin_pb2_grpc
from trunkline.testing.clock import FakeClock

pytestmark = pytest.mark.integration

SID, TOKEN = "AC0123456789abcdef0123456789abcdef", "secret-token"
CALL_SID = "CA11112222333344445555666677778888"


@dataclass
class StandIn:
    """Twilio's Calls resource, as far as a call update goes."""

    live: set[str] = field(default_factory=lambda: {CALL_SID})
    updates: list[dict[str, str]] = field(default_factory=list)

    async def update(self, request: web.Request) -> web.Response:
        account, call = request.match_info["account"], request.match_info["call"]
        expected = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
        if account != SID or request.headers.get("Authorization") != expected:
            return web.json_response(
                {"code": 20003, "message": "Authenticate", "status": 401}, status=401
            )
        if request.content_type != "application/x-www-form-urlencoded":
            return web.json_response({"code": 20001, "message": "form body"}, status=400)
        form = await request.post()
        if call not in self.live:
            return web.json_response(
                {"code": 20404, "message": f"The requested resource {call} was not found"},
                status=404,
            )
        if "Twiml" not in form:
            return web.json_response({"code": 21220, "message": "Twiml missing"}, status=400)
        self.updates.append({"call": call, "Twiml": str(form["Twiml"])})
        return web.json_response({"sid": call, "account_sid": account, "status": "in-progress"})


@pytest.fixture
async def twilio() -> AsyncIterator[tuple[StandIn, str]]:
    stand_in = StandIn()
    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{account}/Calls/{call}.json", stand_in.update)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield stand_in, f"http://127.0.0.1:{port}"
    await runner.cleanup()


class TwilioTransport(FakeTransport):
    name = "twilio"


def session(call_id: str, transport: FakeTransport) -> CallSession:
    clock = FakeClock()
    provider = TracerProvider()
    env = PeerEnv(clock, provider.get_tracer("t"))
    peers = Peers(
        FakeTranscriber(env, lambda _: "hi"),
        FakeContext(env),
        FakeLanguageModel(env, lambda _: "ok"),
        FakeSynthesizer(env),
    )
    return CallSession(
        CallInfo(call_id, "acme", "acme-dental", "1"),
        transport,
        peers,
        EnergyDetector(),
        RecordingSink(),
        clock=clock,
        tracer=provider.get_tracer("g"),
        fillers=FillerCache(clock),
    )


def test_dial_twiml_is_escaped_and_checks_its_target() -> None:
    twiml = dial_twiml(number="+15551234567", say="Hold <on> & wait")
    assert "<Dial>+15551234567</Dial>" in twiml
    assert "<Say>Hold &lt;on&gt; &amp; wait</Say>" in twiml
    assert "<Dial><Sip>sip:desk@pbx.example.com</Sip></Dial>" in dial_twiml(
        sip_uri="sip:desk@pbx.example.com"
    )
    for bad in ("5551234567", "+0123", "+1555<Hangup/>"):
        with pytest.raises(TransferError, match=r"E\.164"):
            dial_twiml(number=bad)
    with pytest.raises(TransferError, match="exactly one"):
        dial_twiml()


async def test_client_against_the_stand_in(twilio: tuple[StandIn, str]) -> None:
    stand_in, url = twilio
    async with httpx.AsyncClient() as http:
        control = TwilioCallControl(http, {"acme": TwilioAccount(SID, TOKEN)}, url)
        await control.redirect("acme", CALL_SID, dial_twiml(number="+15550001111"))
        assert stand_in.updates[0]["call"] == CALL_SID
        assert "<Dial>+15550001111</Dial>" in stand_in.updates[0]["Twiml"]
        with pytest.raises(TransferError, match="20404") as unknown:
            await control.redirect("acme", "CAnope", dial_twiml(number="+15550001111"))
        assert not unknown.value.retryable
        wrong = TwilioCallControl(http, {"acme": TwilioAccount(SID, "wrong")}, url)
        with pytest.raises(TransferError, match="401: 20003 Authenticate"):
            await wrong.redirect("acme", CALL_SID, dial_twiml(number="+15550001111"))
        with pytest.raises(TransferError, match="no Twilio account"):
            await control.redirect("other", CALL_SID, dial_twiml(number="+15550001111"))
        down = TwilioCallControl(http, {"acme": TwilioAccount(SID, TOKEN)}, "http://127.0.0.1:9")
        with pytest.raises(TransferError, match="unreachable") as err:
            await down.redirect("acme", CALL_SID, dial_twiml(number="+15550001111"))
        assert err.value.retryable


async def test_transfer_rpc_redirects_a_twilio_call(twilio: tuple[StandIn, str]) -> None:
    stand_in, url = twilio
    calls = LiveCalls()
    twilio_call = session(CALL_SID, TwilioTransport(FakeClock().now))
    other_call = session("CAother", FakeTransport(FakeClock().now))
    calls.add(twilio_call)
    calls.add(other_call)
    running = asyncio.create_task(twilio_call.run())
    async with httpx.AsyncClient() as http:
        control = TwilioCallControl(http, {"acme": TwilioAccount(SID, TOKEN)}, url)
        server = grpc.aio.server()
        register(server, GatewayAdminService(calls, control))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = admin_pb2_grpc.GatewayAdminStub(channel)
                ctx = call_context(twilio_call.call)
                with pytest.raises(grpc.aio.AioRpcError) as bad:
                    await stub.Transfer(admin_pb2.TransferRequest(context=ctx, phone_number="555"))
                assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
                with pytest.raises(grpc.aio.AioRpcError) as other:
                    await stub.Transfer(
                        admin_pb2.TransferRequest(
                            context=call_context(other_call.call), phone_number="+15550001111"
                        )
                    )
                assert other.value.code() is grpc.StatusCode.FAILED_PRECONDITION
                assert "only Twilio calls" in (other.value.details() or "")
                with pytest.raises(grpc.aio.AioRpcError) as operator:
                    await stub.Transfer(admin_pb2.TransferRequest(context=ctx, operator_id="op"))
                assert operator.value.code() is grpc.StatusCode.FAILED_PRECONDITION
                assert stand_in.updates == []
                reply = await stub.Transfer(
                    admin_pb2.TransferRequest(
                        context=ctx, phone_number="+15550001111", reason="escalation"
                    )
                )
                assert reply.call.state == admin_pb2.CALL_STATE_HANDED_OFF
                assert "<Dial>+15550001111</Dial>" in stand_in.updates[0]["Twiml"]
                summary = await asyncio.wait_for(running, 5)
                assert summary.reason == "admin: transferred to +15550001111 (escalation)"
        finally:
            await server.stop(None)
