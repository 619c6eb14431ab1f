from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace import TracerProvider

from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.core.endpointing import EndpointConfig
from trunkline.gateway.core.turns import TurnConfig
from trunkline.gateway.fakes import (
    EnergyDetector,
    FakeContext,
    FakeLanguageModel,
    FakeSynthesizer,
    FakeTranscriber,
    RecordingSink,
)
from trunkline.gateway.peers.base import PeerEnv
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.pipeline import Peers
from trunkline.gateway.session import CallSession, SessionConfig
from trunkline.gateway.transports.base import CallStart
from trunkline.gateway.transports.websocket import MediaStreamTransport
from trunkline.gateway.web import GatewayWeb, TenantAuth
from trunkline.telephony import stream_token, twilio_signature

pytestmark = pytest.mark.integration

AUTH = TenantAuth("twilio-token", "stream-secret", frozenset({"support"}))
SILENCE = base64.b64encode(b"\xff" * 160).decode()  # mu-law silence, 20 ms at 8 kHz
VOICE = base64.b64encode(b"\x20" * 160).decode()


@dataclass
class Gateway:
    server: TestServer
    web: GatewayWeb | None = None
    sinks: list[RecordingSink] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    clock = SystemClock()
    tracer = TracerProvider().get_tracer("test")
    state = Gateway(server=None)  # type: ignore[arg-type]

    async def run_call(start: CallStart, transport: MediaStreamTransport) -> None:
        if start.call_id in state.broken:
            raise RuntimeError("this call is broken on purpose")
        env = PeerEnv(clock, tracer)
        sink = RecordingSink()
        state.sinks.append(sink)
        session = CallSession(
            CallInfo(start.call_id, start.tenant, start.agent, "v1"),
            transport,
            Peers(
                FakeTranscriber(env, lambda audio: "can you help me with something"),
                FakeContext(env),
                FakeLanguageModel(env, lambda text: "Hi there, how can I help?"),
                FakeSynthesizer(env, frames_per_word=1, sample_rate=transport.out_rate),
            ),
            EnergyDetector(),
            sink,
            clock=clock,
            tracer=tracer,
            config=SessionConfig(
                turn=TurnConfig(endpoint=EndpointConfig(onset_frames=2, endpoint_ms=100)),
                greeting="Welcome.",
            ),
        )
        await session.run()

    web_ = GatewayWeb({"acme": AUTH}, run_call, clock=clock, public_url="https://gw.example")
    server = TestServer(web_.app(), host="127.0.0.1", port=0)
    await server.start_server()
    state.server = server
    state.web = web_
    yield state
    await server.close()


def start_message(call_sid: str, token: str) -> str:
    return json.dumps(
        {
            "event": "start",
            "streamSid": f"MZ{call_sid}",
            "start": {
                "streamSid": f"MZ{call_sid}",
                "callSid": call_sid,
                "accountSid": "AC1",
                "customParameters": {"tenant": "acme", "agent": "support", "token": token},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
    )


def media(payload: str) -> str:
    return json.dumps({"event": "media", "media": {"track": "inbound", "payload": payload}})


class Caller:
    """Plays Twilio's part: sends 20 ms media, echoes marks after the audio before them."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.media = 0
        self.marks: list[str] = []
        self.clears = 0

    async def tick(self, payload: str) -> None:
        await self.ws.send_str(media(payload))
        while True:
            try:
                msg = await self.ws.receive(timeout=0.02)
            except TimeoutError:
                return
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return
            data = json.loads(msg.data)
            if data["event"] == "media":
                self.media += 1
            elif data["event"] == "mark":
                self.marks.append(data["mark"]["name"])
                await self.ws.send_str(json.dumps({"event": "mark", "mark": data["mark"]}))
            elif data["event"] == "clear":
                self.clears += 1

    async def until_marks(self, n: int, payload: str = SILENCE, limit: int = 300) -> None:
        for _ in range(limit):
            if len(self.marks) >= n:
                return
            await self.tick(payload)
        raise AssertionError(f"only {self.marks} marks, {self.media} media")


async def test_webhook_answers_twiml_only_to_signed_requests(gateway: Gateway) -> None:
    form = {"CallSid": "CA9", "From": "+15550001", "To": "+15550002"}
    path = "/twilio/voice/acme/support"
    signature = twilio_signature(AUTH.twilio_auth_token, "https://gw.example" + path, form)
    async with aiohttp.ClientSession() as http:
        ok = await http.post(
            gateway.url(path), data=form, headers={"X-Twilio-Signature": signature}
        )
        assert ok.status == 200
        body = await ok.text()
        token = stream_token(AUTH.stream_secret, "acme", "support", "CA9")
        assert '<Stream url="wss://gw.example/twilio/stream">' in body
        assert f'<Parameter name="token" value="{token}"/>' in body
        forged = await http.post(gateway.url(path), data=form, headers={"X-Twilio-Signature": "x"})
        assert forged.status == 403
        unsigned = await http.post(gateway.url(path), data=form)
        assert unsigned.status == 403
        unknown = await http.post(gateway.url("/twilio/voice/nobody/support"), data=form)
        assert unknown.status == 404


async def test_stream_with_a_bad_token_is_refused(gateway: Gateway) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(gateway.url("/twilio/stream")) as ws,
    ):
        await ws.send_str(start_message("CA2", "forged"))
        msg = await ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert msg.data == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert gateway.sinks == []


async def test_a_call_over_the_twilio_stream_survives_garbage(gateway: Gateway) -> None:
    token = stream_token(AUTH.stream_secret, "acme", "support", "CA1")
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(gateway.url("/twilio/stream")) as ws,
    ):
        await ws.send_str(json.dumps({"event": "connected", "protocol": "Call"}))
        await ws.send_str(start_message("CA1", token))
        caller = Caller(ws)
        await caller.until_marks(1)  # the greeting played
        for garbage in ["not json", '{"event":"bogus"}', '{"event":"media","media":{}}']:
            await ws.send_str(garbage)
        await ws.send_bytes(b"\x00\x01")
        await ws.send_str(media("***not base64***"))
        for _ in range(8):
            await caller.tick(VOICE)
        await caller.until_marks(3)  # the greeting and the two clauses of the reply
        await ws.send_str(json.dumps({"event": "stop", "stop": {}}))
        async for _ in ws:  # until the gateway closes the socket
            pass
        await asyncio.wait_for(gateway.sinks[0].ended.wait(), 5)
    sink = gateway.sinks[0]
    assert [t.agent_text for t in sink.turns] == ["Welcome.", "Hi there, how can I help?"]
    assert sink.turns[1].user_text == "can you help me with something"
    assert caller.media > 0
    # the reply was paced by the web app's one shared clock, which the ended call has left
    assert gateway.web is not None
    assert len(gateway.web.playout) == 0


async def test_one_broken_call_does_not_affect_another(gateway: Gateway) -> None:
    gateway.broken.add("CAbad")
    bad_token = stream_token(AUTH.stream_secret, "acme", "support", "CAbad")
    good_token = stream_token(AUTH.stream_secret, "acme", "support", "CAok")
    async with aiohttp.ClientSession() as http:
        bad = await http.ws_connect(gateway.url("/twilio/stream"))
        good = await http.ws_connect(gateway.url("/twilio/stream"))
        await bad.send_str(start_message("CAbad", bad_token))
        await good.send_str(start_message("CAok", good_token))
        closed = await bad.receive(timeout=5)
        assert closed.type is aiohttp.WSMsgType.CLOSE
        await Caller(good).until_marks(1)
        await good.close()
        await bad.close()
    assert gateway.sinks[0].turns[0].agent_text == "Welcome."
