"""Browser WebRTC calls over real aiortc connections on this machine (host candidates, no STUN):
a Python aiortc peer plays the browser, POSTs its offer to the gateway's signalling endpoint,
speaks a recorded phrase, hears the greeting and the answer, barges in and hangs up. The turn's
peers are fakes (the answer is a tone per word, so what was heard can be counted exactly); the
media path, pacing, Opus both ways and signalling are real."""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace import TracerProvider

from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.core.endpointing import EndpointConfig
from trunkline.gateway.core.replies import GuardPolicy
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
from trunkline.gateway.transports.base import CallStart, Transport
from trunkline.gateway.transports.webrtc_peer import BrowserPeer
from trunkline.gateway.web import GatewayWeb, TenantAuth

pytestmark = pytest.mark.integration

AUTH = TenantAuth("twilio-token", "stream-secret", frozenset({"support"}))
WAV = Path(__file__).resolve().parents[3] / "tests" / "data" / "audio" / "hours-joe-16k.wav"
GREETING = "Welcome to the clinic."  # 4 words
ANSWER = " ".join(["open"] * 40)  # 40 words x 5 frames: a 4 s answer to barge into
FRAMES_PER_WORD = 5


def phrase() -> bytes:
    with wave.open(str(WAV)) as wav:
        return wav.readframes(wav.getnframes())


class ToneSynthesizer(FakeSynthesizer):
    """A 440 Hz tone of ``frames_per_word`` 20 ms frames per word (audible through Opus)."""

    async def _synthesize(self, call: CallInfo, text: str):  # type: ignore[no-untyped-def]
        self.texts.append(text)
        n = self.sample_rate // 50 * self.frames_per_word
        t = np.arange(n) / self.sample_rate
        word = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
        for _ in text.split():
            yield word


@dataclass
class Rig:
    server: TestServer
    web: GatewayWeb
    sinks: list[RecordingSink] = field(default_factory=list)
    transports: list[Transport] = field(default_factory=list)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    clock = SystemClock()
    tracer = TracerProvider().get_tracer("test")
    state = Rig(server=None, web=None)  # type: ignore[arg-type]

    async def run_call(start: CallStart, transport: Transport) -> None:
        env = PeerEnv(clock, tracer)
        sink = RecordingSink()
        state.sinks.append(sink)
        state.transports.append(transport)
        session = CallSession(
            CallInfo(start.call_id, start.tenant, start.agent, "v1"),
            transport,
            Peers(
                FakeTranscriber(env, lambda audio: "what are your hours"),
                FakeContext(env),
                FakeLanguageModel(env, lambda text: ANSWER),
                ToneSynthesizer(env, FRAMES_PER_WORD, sample_rate=transport.out_rate),
            ),
            EnergyDetector(floor=300),
            sink,
            clock=clock,
            tracer=tracer,
            config=SessionConfig(
                turn=TurnConfig(endpoint=EndpointConfig(onset_frames=3, endpoint_ms=400)),
                greeting=GREETING,
                guard=GuardPolicy(enabled=False),  # the answer is a test tone, not facts
                llm_prefill=False,
            ),
        )
        await session.run()

    web_ = GatewayWeb({"acme": AUTH}, run_call, clock=clock, public_url="https://gw.example")
    server = TestServer(web_.app(), host="127.0.0.1", port=0)
    await server.start_server()
    state.server, state.web = server, web_
    yield state
    await server.close()
    for task in list(web_.calls):  # a call a failed test left running
        task.cancel()
    await asyncio.wait_for(asyncio.gather(*web_.calls, return_exceptions=True), 10)


async def until(condition: object, limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_bad_offers_get_clear_errors(rig: Rig) -> None:
    peer = BrowserPeer()
    offer = await peer.offer()
    cases = [
        (b"not json", 400, "not JSON"),
        (b"[1, 2]", 400, "JSON object"),
        ({"type": "offer", "tenant": "acme", "agent": "support"}, 400, "sdp missing"),
        ({**offer, "type": "answer", "tenant": "acme", "agent": "support"}, 400, "'offer'"),
        ({**offer, "agent": "support"}, 400, "'tenant'"),
        ({"sdp": "hello", "type": "offer", "tenant": "acme", "agent": "support"}, 400, "v=0"),
        (
            {
                "sdp": "v=0\r\nm=video 9 x\r\n",
                "type": "offer",
                "tenant": "acme",
                "agent": "support",
            },
            400,
            "no audio",
        ),
        (
            {
                "sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n",
                "type": "offer",
                "tenant": "acme",
                "agent": "support",
            },
            400,
            "could not be applied",
        ),
        ({**offer, "tenant": "nobody", "agent": "support"}, 404, "unknown tenant 'nobody'"),
        ({**offer, "tenant": "acme", "agent": "sales"}, 404, "unknown agent 'sales'"),
    ]
    async with aiohttp.ClientSession() as http:
        for body, status, text in cases:
            kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
            async with http.post(rig.url("/webrtc/offer"), **kwargs) as response:
                assert response.status == status, (body, await response.text())
                assert text in (await response.json())["error"]
                assert response.headers["Access-Control-Allow-Origin"] == "*"
        operator = {**offer, "ticket_id": "t-1", "token": "x"}
        async with http.post(rig.url("/webrtc/operator"), json=operator) as response:
            assert response.status == 403  # this gateway was given no join secret
            assert "no join secret" in (await response.json())["error"]
    await peer.close()
    assert rig.sinks == []  # no call was started by any of them


async def test_a_browser_call_hears_greeting_and_answer_barges_in_and_hangs_up(rig: Rig) -> None:
    peer = BrowserPeer()
    try:
        await _browser_call(rig, peer)
    finally:
        await peer.close()


async def _browser_call(rig: Rig, peer: BrowserPeer) -> None:
    answer = await peer.call(rig.url("/webrtc/offer"), tenant="acme", agent="support")
    assert answer["call_id"].startswith("webrtc-")
    assert "a=candidate" in answer["sdp"]
    assert "stun" not in answer["sdp"].lower()
    assert "opus" in answer["sdp"].lower()
    await until(lambda: rig.sinks and rig.sinks[0].turns, 10, "the greeting turn")
    sink = rig.sinks[0]
    await asyncio.sleep(0.3)  # the last frames are still on the wire / in the jitter buffer
    # The greeting was heard whole: 4 words x 5 frames of tone, played out by the track's clock.
    greeting_frames = peer.heard.loud_frames_since(0.0)
    assert abs(greeting_frames - 4 * FRAMES_PER_WORD) <= 3, greeting_frames

    spoken_at = time.monotonic()
    speech_s = peer.mic.say(phrase())
    await until(lambda: peer.heard.loud_frames_since(spoken_at + speech_s) > 10, 10, "the answer")
    answer_started = spoken_at + speech_s
    # Let the answer play for a while; the caller's mic sends only silence meanwhile.
    await asyncio.sleep(1.0)
    heard_before = peer.heard.loud_frames_since(answer_started)
    # ~50 frames in real time; a starved loop on the shared 2-core machine plays it later.
    assert heard_before >= 20, heard_before

    barge_at = time.monotonic()
    peer.mic.say(phrase()[: 16000 * 2])  # one second of the phrase over the answer
    await until(lambda: len(sink.turns) >= 2, 10, "the interrupted turn")
    await asyncio.sleep(0.5)
    last_loud = peer.heard.last_loud_at()
    assert last_loud is not None
    stop_s = last_loud - barge_at
    assert stop_s < 0.6, f"the answer went on {stop_s:.2f} s after the caller spoke"
    turn = sink.turns[1]
    assert turn.user_text == "what are your hours"
    assert turn.interrupted
    assert 0 < len(turn.agent_text.split()) < 40  # what was heard, not the whole answer
    print(f"webrtc barge-in: answer audio stopped {stop_s * 1000:.0f} ms after speech onset")

    await peer.close()  # the browser hangs up
    await asyncio.wait_for(sink.ended.wait(), 10)
    summary = next(payload for kind, payload in sink.events if kind == "call.ended")
    assert summary.reason in (  # type: ignore[attr-defined]
        "the caller's audio track ended",
        "connection closed",
        "connection failed",
    )
    assert not rig.web.calls or all(task.done() for task in rig.web.calls)
