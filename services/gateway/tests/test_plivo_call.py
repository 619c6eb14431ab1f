"""A whole call over the Plivo dialect through the production wiring: the real aiohttp server,
Silero on real speech, the gRPC peer clients (against in-test servicers), the event sink on real
NATS and Redis, and the admin API that lists the call and hangs it up."""

from __future__ import annotations

import asyncio
import json
import uuid
import wave
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from trunkline.audio import OutboundMulaw8k
from trunkline.bus import Bus, ConsumerSpec
from trunkline.devservers import NatsServer
from trunkline.gateway.app import Gateway, PeerChannels
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.profile import parse_profile
from trunkline.gateway.server import GatewayAdminService
from trunkline.gateway.settings import GatewaySettings
from trunkline.gateway.sink import EventSink
from trunkline.gateway.web import GatewayWeb, TenantAuth
from trunkline.proto.common.v1 import call_pb2, knowledge_pb2
from trunkline.proto.context.v1 import context_pb2, context_pb2_grpc
from trunkline.proto.events.v1 import events_pb2
from trunkline.proto.gateway.v1 import admin_pb2, admin_pb2_grpc
from trunkline.proto.llm.v1 import llm_pb2, llm_pb2_grpc
from trunkline.proto.stt.v1 import stt_pb2, stt_pb2_grpc
from trunkline.proto.tts.v1 import tts_pb2, tts_pb2_grpc
from trunkline.runtime import channel
from trunkline.state import CallStateStore
from trunkline.telephony import stream_token
from trunkline.testing.telemetry_fixtures import SpanRecorder

pytestmark = pytest.mark.integration

Ctx = grpc.aio.ServicerContext[Any, Any]
WAV = Path(__file__).resolve().parents[3] / "tests" / "data" / "audio" / "hours-joe-16k.wav"
SECRET = "plivo-secret"
PROFILE = parse_profile(
    "name: acme-dental\nversion: 2.0.0\nsystem_prompt: You are Ava.\n"
    "greeting: Hi there.\nvoice: {name: en_US-joe-medium}\n"
)
SILENCE = OutboundMulaw8k().push(bytes(640))[0]


class Peers(
    stt_pb2_grpc.SpeechToTextServicer,
    context_pb2_grpc.ContextServiceServicer,
    llm_pb2_grpc.LanguageModelServicer,
    tts_pb2_grpc.TextToSpeechServicer,
):
    """All four peers in one servicer: STT hears "what are your hours", the LLM answers."""

    def __init__(self) -> None:
        self.heard: list[int] = []
        self.llm: list[llm_pb2.GenerateRequest] = []
        self.clauses: list[str] = []

    async def StreamingRecognize(  # noqa: N802
        self, request_iterator: AsyncIterator[stt_pb2.StreamingRecognizeRequest], context: Ctx
    ) -> AsyncIterator[stt_pb2.StreamingRecognizeResponse]:
        audio = bytearray()
        async for request in request_iterator:  # one stream per utterance, fed as it grows
            if request.WhichOneof("request") == "audio":
                audio += request.audio
            elif request.WhichOneof("request") == "control":  # a flush or the end
                self.heard.append(len(audio))
                final = stt_pb2.Transcript(is_final=True, text="what are your hours")
                yield stt_pb2.StreamingRecognizeResponse(transcript=final)

    async def Resolve(  # noqa: N802
        self, request: context_pb2.ResolveRequest, context: Ctx
    ) -> context_pb2.ResolveResponse:
        block = knowledge_pb2.ContextBlock(text="[1] We open at eight.")  # what the LLM may say
        return context_pb2.ResolveResponse(context_block=block, retrieval_confidence=0.9)

    async def StoreAnswer(  # noqa: N802
        self, request: context_pb2.StoreAnswerRequest, context: Ctx
    ) -> context_pb2.StoreAnswerResponse:
        return context_pb2.StoreAnswerResponse(stored=False, reason="test peer")

    async def Prefill(  # noqa: N802
        self, request: llm_pb2.PrefillRequest, context: Ctx
    ) -> llm_pb2.PrefillResponse:
        return llm_pb2.PrefillResponse(completed=True)

    async def Generate(  # noqa: N802
        self, request: llm_pb2.GenerateRequest, context: Ctx
    ) -> AsyncIterator[llm_pb2.GenerateResponse]:
        self.llm.append(request)
        for word in ["We", " open", " at", " eight."]:
            yield llm_pb2.GenerateResponse(delta=llm_pb2.TextDelta(text=word))
        yield llm_pb2.GenerateResponse(done=llm_pb2.GenerateDone(text="We open at eight."))

    async def StreamingSynthesize(  # noqa: N802
        self, request_iterator: AsyncIterator[tts_pb2.StreamingSynthesizeRequest], context: Ctx
    ) -> AsyncIterator[tts_pb2.StreamingSynthesizeResponse]:
        async for request in request_iterator:
            if request.WhichOneof("request") == "text":
                self.clauses.append(request.text.text)
                chunk = tts_pb2.AudioChunk(
                    clause_id=request.text.clause_id, audio=b"\x40\x00" * 3200
                )
                yield tts_pb2.StreamingSynthesizeResponse(audio=chunk)
                done = tts_pb2.ClauseDone(clause_id=request.text.clause_id, chunk_count=1)
                yield tts_pb2.StreamingSynthesizeResponse(clause_done=done)


class PlivoCaller:
    """Plays Plivo's part: 20 ms media out, ``playedStream`` back for each checkpoint."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.played = 0
        self.checkpoints: list[str] = []

    async def tick(self, payload: str = SILENCE) -> None:
        media = {"event": "media", "media": {"track": "inbound", "payload": payload}}
        await self.ws.send_str(json.dumps(media))
        while True:
            try:
                msg = await self.ws.receive(timeout=0.005)
            except TimeoutError:
                return
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return
            data = json.loads(msg.data)
            if data["event"] == "playAudio":
                assert data["media"]["contentType"] == "audio/x-mulaw"
                self.played += 1
            elif data["event"] == "checkpoint":
                self.checkpoints.append(data["name"])
                reply = {"event": "playedStream", "streamId": "S1", "name": data["name"]}
                await self.ws.send_str(json.dumps(reply))

    async def until_checkpoints(self, n: int, limit: int = 500) -> None:
        for _ in range(limit):
            if len(self.checkpoints) >= n:
                return
            await self.tick()
        raise AssertionError(f"only {self.checkpoints} checkpoints, {self.played} media")


def speech_payloads() -> list[str]:
    with wave.open(str(WAV), "rb") as w:
        pcm = w.readframes(w.getnframes())
    return OutboundMulaw8k().push(pcm)


@dataclass
class Rig:
    peers: Peers
    bus: Bus
    redis: Redis
    url: Callable[[str], str]
    admin: admin_pb2_grpc.GatewayAdminStub


@pytest.fixture
async def rig(
    nats_server: NatsServer, redis_url: str, span_recorder: SpanRecorder
) -> AsyncIterator[Rig]:
    """The gateway as ``__main__`` wires it, on one in-test gRPC server for all four peers."""
    peers = Peers()
    server = grpc.aio.server()
    stt_pb2_grpc.add_SpeechToTextServicer_to_server(peers, server)
    context_pb2_grpc.add_ContextServiceServicer_to_server(peers, server)
    llm_pb2_grpc.add_LanguageModelServicer_to_server(peers, server)
    tts_pb2_grpc.add_TextToSpeechServicer_to_server(peers, server)
    port = server.add_insecure_port("127.0.0.1:0")
    chan = channel(f"127.0.0.1:{port}")
    bus = await Bus.connect(nats_server.url, name="gateway-test")
    redis = Redis.from_url(redis_url)
    clock = SystemClock()
    sink = EventSink(bus, CallStateStore(redis, ttl_seconds=60), "gw-test")
    gateway = Gateway(
        GatewaySettings(endpoint_ms=300),
        {"acme-dental": PROFILE},
        sink,
        PeerChannels(chan, chan, chan, chan),
        clock=clock,
        tracer=span_recorder.provider.get_tracer("test"),
    )
    admin_pb2_grpc.add_GatewayAdminServicer_to_server(GatewayAdminService(gateway.calls), server)
    await server.start()
    await sink.start()
    tenants = {"acme": TenantAuth("", SECRET, frozenset({"acme-dental"}))}
    web = GatewayWeb(tenants, gateway.run_call, clock=clock, public_url="https://gw.example")
    http_server = TestServer(web.app(), host="127.0.0.1", port=0)
    await http_server.start_server()
    try:
        yield Rig(
            peers,
            bus,
            redis,
            lambda path: str(http_server.make_url(path)),
            admin_pb2_grpc.GatewayAdminStub(chan),
        )
    finally:
        await http_server.close()
        await chan.close()
        await server.stop(None)
        await bus.close()
        await redis.aclose()


async def event_kinds(bus: Bus, call_id: str) -> tuple[list[str], events_pb2.CallEnded]:
    """The kinds of the call's events up to ``call_ended``, and that last event."""
    spec = ConsumerSpec(
        stream="EVENTS",
        durable=f"test-{call_id}",
        filter_subject=f"trunkline.events.*.acme.{call_id}",
    )
    kinds: list[str] = []

    async def read() -> events_pb2.CallEnded:
        async with aclosing(bus.durable_messages(spec)) as messages:
            async for delivery in messages:
                await delivery.ack()
                kinds.append(delivery.subject.split(".")[2])
                if kinds[-1] == "call_ended":
                    return delivery.decode(events_pb2.CallEnded)
        raise AssertionError("the event stream ended")

    ended = await asyncio.wait_for(read(), 10)
    return kinds, ended


def start_message(call_id: str) -> str:
    return json.dumps(
        {
            "event": "start",
            "start": {
                "streamId": "S1",
                "callId": call_id,
                "accountId": "MA1",
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
            },
        }
    )


async def test_a_plivo_call_through_the_production_wiring(rig: Rig) -> None:
    call_id = f"C{uuid.uuid4().hex}"
    token = stream_token(SECRET, "acme", "acme-dental", "")
    url = rig.url(f"/plivo/stream?tenant=acme&agent=acme-dental&token={token}")
    ref = call_pb2.CallContext(tenant_id="acme", call_id=call_id)
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.send_str(start_message(call_id))
        caller = PlivoCaller(ws)
        await caller.until_checkpoints(1)  # the greeting was played
        for payload in speech_payloads():
            await caller.tick(payload)
        await caller.until_checkpoints(2)  # the one-clause reply was played
        listed = await rig.admin.ListCalls(
            admin_pb2.ListCallsRequest(context=call_pb2.CallContext(tenant_id="acme"))
        )
        assert [c.context.call_id for c in listed.calls] == [call_id]
        assert listed.calls[0].transport == call_pb2.TRANSPORT_PLIVO
        for _ in range(60):  # the reply's last checkpoint came back: the turn completes
            got = await rig.admin.GetCall(admin_pb2.GetCallRequest(context=ref))
            if len(got.call.turns) == 2:
                break
            await caller.tick()
        assert [t.agent_text for t in got.call.turns] == ["Hi there.", "We open at eight."]
        assert got.call.turns[1].caller_text == "what are your hours"
        hung = await rig.admin.HangUp(admin_pb2.HangUpRequest(context=ref, reason="test"))
        assert hung.call.state == admin_pb2.CALL_STATE_ENDED
        async for _ in ws:  # until the gateway closes the socket
            pass
    missing = call_pb2.CallContext(tenant_id="other", call_id=call_id)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await rig.admin.GetCall(admin_pb2.GetCallRequest(context=missing))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    assert rig.peers.heard[-1] > 32000  # STT got more than 1 s of the utterance
    assert {"Hi there.", "One moment, please."} <= set(rig.peers.clauses)
    # the reply streams word by word: its first clause goes to TTS after 3 words (the default)
    assert rig.peers.clauses[-2:] == ["We open at", "eight."]
    history = rig.peers.llm[-1].prompt.history
    assert [m.content for m in history] == ["Hi there.", "what are your hours"]
    assert caller.played > 0

    kinds, ended = await event_kinds(rig.bus, call_id)
    assert kinds == ["call_started", "turn", "turn", "call_ended"]
    assert ended.reason == events_pb2.END_REASON_ADMIN_HANGUP
    assert ended.turn_count == 2
    state = await CallStateStore(rig.redis, ttl_seconds=60).get("acme", call_id)
    assert state is not None
    assert state.node == "ended"
    assert state.agent_version == "2.0.0"
    assert [t.text for t in state.history][-2:] == ["what are your hours", "We open at eight."]
