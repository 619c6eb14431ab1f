"""The keypad menu over a real Twilio media stream (issue 14): a simulated Twilio caller on the
gateway's web app (aiohttp, the real protocol, the shared pacer) presses keys as Twilio sends
them (``{"event": "dtmf"}``) and hears the action: 9 while the agent answers cuts the reply off
(``clear``) and plays it again whole, 1 plays its line, # ends the call. Peers are fakes."""

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

from trunkline.agents.dtmf import menu_items
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
from trunkline.gateway.records import CallSummary
from trunkline.gateway.session import CallSession, SessionConfig
from trunkline.gateway.transports.base import CallStart, Transport
from trunkline.gateway.web import GatewayWeb, TenantAuth
from trunkline.telephony import stream_token

pytestmark = pytest.mark.integration

AUTH = TenantAuth("twilio-token", "stream-secret", frozenset({"support"}))
SILENCE = base64.b64encode(b"\xff" * 160).decode()  # mu-law silence, 20 ms at 8 kHz
VOICE = base64.b64encode(b"\x20" * 160).decode()
# long enough (50 words: 1 s of fake speech) that a stalled test loop (the pacer drops, not
# bursts, a debt over its catch-up limit) still finds it playing when the key is pressed
REPLY = (
    "Your appointment is on Tuesday at ten in the morning with Doctor Lee, see you then. "
    "Please come ten minutes early to fill in the new patient form at the front desk, and "
    "bring your insurance card, a list of your medicines and the name of your last dentist."
)
HOURS = "We are open Monday to Friday from eight to six."
MENU = {"9": "repeat", "1": f"say: {HOURS}", "#": "hang_up"}
WORDS_PER_FRAME = 1  # the fake TTS: one 20 ms frame per word


@dataclass
class Gateway:
    server: TestServer
    sinks: list[RecordingSink] = field(default_factory=list)
    tts: list[FakeSynthesizer] = field(default_factory=list)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    clock = SystemClock()
    tracer = TracerProvider().get_tracer("test")
    state = Gateway(server=None)  # type: ignore[arg-type]

    async def run_call(start: CallStart, transport: Transport) -> None:
        env = PeerEnv(clock, tracer)
        sink = RecordingSink()
        tts = FakeSynthesizer(env, frames_per_word=WORDS_PER_FRAME, sample_rate=transport.out_rate)
        state.sinks.append(sink)
        state.tts.append(tts)
        session = CallSession(
            CallInfo(start.call_id, start.tenant, start.agent, "v1"),
            transport,
            Peers(
                FakeTranscriber(env, lambda audio: "when is my appointment"),
                FakeContext(env),
                FakeLanguageModel(env, lambda text: REPLY),
                tts,
            ),
            EnergyDetector(),
            sink,
            clock=clock,
            tracer=tracer,
            config=SessionConfig(
                turn=TurnConfig(endpoint=EndpointConfig(onset_frames=2, endpoint_ms=100)),
                greeting="Welcome.",
                grounding_texts=(REPLY,),
                keypad=menu_items(MENU),
            ),
        )
        await session.run()

    web_ = GatewayWeb({"acme": AUTH}, run_call, clock=clock, public_url="https://gw.example")
    server = TestServer(web_.app(), host="127.0.0.1", port=0)
    await server.start_server()
    state.server = server
    yield state
    await server.close()


def start_message(call_sid: str, token: str) -> str:
    start = {
        "streamSid": f"MZ{call_sid}",
        "callSid": call_sid,
        "accountSid": "AC1",
        "customParameters": {"tenant": "acme", "agent": "support", "token": token},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    return json.dumps({"event": "start", "streamSid": f"MZ{call_sid}", "start": start})


class Caller:
    """Twilio's part: 20 ms media out, marks echoed, what the gateway plays counted."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.media = 0
        self.marks: list[str] = []
        self.clears = 0
        self.closed = False

    async def tick(self, payload: str = SILENCE) -> None:
        await self.ws.send_str(json.dumps({"event": "media", "media": {"payload": payload}}))
        while True:
            try:
                msg = await self.ws.receive(timeout=0.02)
            except TimeoutError:
                return
            if msg.type is not aiohttp.WSMsgType.TEXT:
                self.closed = msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                return
            data = json.loads(msg.data)
            if data["event"] == "media":
                self.media += 1
            elif data["event"] == "mark":
                self.marks.append(data["mark"]["name"])
                await self.ws.send_str(json.dumps({"event": "mark", "mark": data["mark"]}))
            elif data["event"] == "clear":
                self.clears += 1

    async def press(self, digit: str) -> None:
        await self.ws.send_str(json.dumps({"event": "dtmf", "dtmf": {"digit": digit}}))

    async def until(self, condition: object, limit: int = 400) -> None:
        for _ in range(limit):
            if condition():  # type: ignore[operator]
                return
            await self.tick()
        raise AssertionError(f"not reached: {self.marks} marks, {self.media} media")


async def test_keys_over_the_twilio_stream_repeat_say_and_hang_up(gateway: Gateway) -> None:
    token = stream_token(AUTH.stream_secret, "acme", "support", "CA1")
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(gateway.url("/twilio/stream")) as ws,
    ):
        await ws.send_str(json.dumps({"event": "connected", "protocol": "Call"}))
        await ws.send_str(start_message("CA1", token))
        caller = Caller(ws)
        await caller.until(lambda: len(caller.marks) >= 1)  # the greeting played
        sink, tts = gateway.sinks[0], gateway.tts[0]
        greeted = caller.media
        for _ in range(8):
            await caller.tick(VOICE)
        await caller.until(lambda: caller.media > greeted + 3)  # the reply is playing
        await caller.press("9")  # mid-reply: cut off, then the whole reply again
        await caller.until(lambda: len(sink.turns) >= 3)
        assert caller.clears == 1
        assert sink.turns[1].interrupted
        assert (sink.turns[2].reply_source, sink.turns[2].agent_text) == ("keypad", REPLY)
        assert tts.texts[-1] == REPLY
        heard_before = caller.media
        await caller.press("1")
        await caller.until(lambda: len(sink.turns) >= 4)
        assert sink.turns[3].agent_text == HOURS
        # the caller heard the line: at least its words' frames came after the key
        assert caller.media - heard_before >= len(HOURS.split()) * WORDS_PER_FRAME
        await caller.press("#")
        await caller.until(lambda: caller.closed or sink.ended.is_set(), limit=100)
        await asyncio.wait_for(sink.ended.wait(), 5)
    (summary,) = [value for name, value in sink.events if name == "call.ended"]
    assert isinstance(summary, CallSummary)
    assert summary.reason == "the caller pressed # to hang up"
