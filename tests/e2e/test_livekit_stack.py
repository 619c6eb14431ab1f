"""A LiveKit call through the whole local stack (``trunkline stack up``: the LiveKit server built
from the Go module proxy, its webhook to the gateway, Whisper, MiniLM + Milvus Lite, SmolLM2 on
llama.cpp, Piper, NATS, Redis).

A Python participant (``livekit`` rtc SDK) joins the room ``acme.acme-dental.<id>`` with a token
minted from the stack's key; LiveKit's webhook sends the agent in. The caller hears the greeting
(transcribed back by the STT service), asks two questions in Piper's voice, hears answers whose
transcript matches what the LLM produced, and leaves. (Barge-in through LiveKit is tested with
fake peers in ``services/gateway/tests/test_livekit_call.py``: on this busy machine the agent's
fillers made the moment to barge into the answer itself unreliable.) Voice-to-voice per turn:
the caller's last spoken frame to the first loud frame of the reply as the caller received it.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter
from pathlib import Path

import grpc
import pytest

from trunkline.audio import mulaw_to_pcm16, resample_pcm16
from trunkline.bus import Bus
from trunkline.cli.caller.tts import synthesize
from trunkline.cli.demo import component_url
from trunkline.cli.knowledge import ingest
from trunkline.cli.record import StackRecord
from trunkline.cli.turns import TurnFeed
from trunkline.gateway.livekit_dispatch import room_token
from trunkline.gateway.livekit_rooms import LiveKitKey
from trunkline.gateway.transports.livekit_peer import LiveKitCaller
from trunkline.proto.common.v1 import audio_pb2, call_pb2
from trunkline.proto.stt.v1 import stt_pb2, stt_pb2_grpc

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
AGENTS = ROOT / "agents"
TENANT, AGENT = "acme", "acme-dental"
RATE = 16_000
QUESTIONS = ("Hi, when are you open on Saturday?", "How much does teeth whitening cost?")


@pytest.fixture(scope="module")
def stack(local_stack: StackRecord) -> StackRecord:
    return local_stack  # tests/e2e/conftest.py: up once for this module, down after it


def words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z']+", text.lower().replace("-", " ")) if w != "'"]


def precision(heard: str, produced: str) -> float:
    said = Counter(words(heard))
    common = said & Counter(words(produced))
    return sum(common.values()) / max(1, sum(said.values()))


async def recognize(addr: str, pcm: bytes) -> str:
    async with grpc.aio.insecure_channel(addr) as channel:
        reply = await stt_pb2_grpc.SpeechToTextStub(channel).Recognize(
            stt_pb2.RecognizeRequest(
                context=call_pb2.CallContext(tenant_id=TENANT, call_id="e2e-check"),
                config=stt_pb2.RecognitionConfig(
                    audio_format=audio_pb2.AudioFormat(
                        encoding=audio_pb2.AUDIO_ENCODING_PCM16, sample_rate_hz=RATE, channels=1
                    )
                ),
                audio=pcm,
            ),
            timeout=60,
        )
    return str(reply.transcript.text)


async def quiet_for(caller: LiveKitCaller, quiet_s: float, limit_s: float) -> None:
    """Until the agent has been silent for ``quiet_s`` (its reply is over)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        last = caller.last_loud
        if last is not None and time.monotonic() - last > quiet_s:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the agent did not go quiet within {limit_s} s")


async def first_loud_after(caller: LiveKitCaller, after: float, limit_s: float) -> float:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if (at := caller.first_loud(after)) is not None:
            return at
        await asyncio.sleep(0.05)
    raise AssertionError(f"no reply within {limit_s} s")


async def test_a_livekit_caller_talks_to_the_agent_through_the_stack(stack: StackRecord) -> None:
    gateway = stack.get("gateway")
    livekit = stack.get("livekit")
    assert gateway is not None
    assert livekit is not None, "the stack started no LiveKit server (make install builds it)"
    key = LiveKitKey(
        gateway.env["GATEWAY_LIVEKIT_API_KEY"],
        gateway.env["GATEWAY_LIVEKIT_API_SECRET"],
        frozenset({TENANT}),
    )
    summary = await ingest(component_url(stack, "context"), TENANT, AGENTS / AGENT / "knowledge")
    assert not summary.failed
    tts, stt = component_url(stack, "tts"), component_url(stack, "stt")
    spoken = await synthesize(tts, list(QUESTIONS), tenant="simulated-caller")
    phrases = [resample_pcm16(mulaw_to_pcm16(audio), 8000, RATE) for audio in spoken]

    bus = await Bus.connect(component_url(stack, "nats"), name="e2e-livekit")
    feed = TurnFeed(bus, TENANT)
    await feed.start()
    room = f"{TENANT}.{AGENT}.{uuid.uuid4().hex[:10]}"
    call_id = f"livekit-{room}".replace(".", "~")
    caller = LiveKitCaller(RATE)
    figures: list[float] = []
    try:
        await caller.join(livekit.url, room_token(key, room, "e2e-caller"))
        greeting = (await feed.wait_for(call_id, 1, 90))[0]
        await quiet_for(caller, 1.0, 30)
        heard = await recognize(stt, caller.heard.since(0.0))
        assert precision(heard, greeting.agent) >= 0.6, (heard, greeting.agent)

        for n, pcm in enumerate(phrases[:2]):
            start = time.monotonic()
            ended = start + caller.say(pcm)
            replied = await first_loud_after(caller, ended, 30)
            figures.append(replied - ended)
            turn = (await feed.wait_for(call_id, n + 2, 120))[n + 1]
            await quiet_for(caller, 1.0, 60)
            assert turn.caller, turn
            assert turn.agent, turn
            heard = await recognize(stt, caller.heard.since(replied))
            assert precision(heard, turn.agent) >= 0.6, (heard, turn.agent)
        print("livekit e2e voice-to-voice (s): " + ", ".join(f"{f:.2f}" for f in figures))
    finally:
        await caller.leave()
        await feed.stop()
        await bus.close()
