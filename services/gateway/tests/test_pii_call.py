"""A caller speaks a card number over the Twilio stream (issue 13): no span (through a real
OTLP receiver), no log line, no NATS event (JetStream) holds it; the tenant whose policy allows
it has the turn, encrypted, in the transcript store.

The call's path is the real one from the media WebSocket to the sink: transport, turn machine,
pipeline, tool executor (an HTTP tool whose error echoes the card), EventSink on JetStream,
the audit sink, telemetry through ``setup_telemetry`` and logs through ``configure_logging``.
STT and the LLM are scripted (the STT writes the digits as words, as Whisper sometimes does).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr
from redis.asyncio import Redis

from trunkline.bus import Bus, ConsumerSpec
from trunkline.devservers import NatsServer
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.core.endpointing import EndpointConfig
from trunkline.gateway.core.events import Message
from trunkline.gateway.core.tools import ToolBook, ToolPolicy
from trunkline.gateway.core.turns import TurnConfig
from trunkline.gateway.fakes import (
    EnergyDetector,
    FakeContext,
    FakeSynthesizer,
    FakeTranscriber,
)
from trunkline.gateway.peers.base import LanguageModel, PeerEnv
from trunkline.gateway.peers.types import (
    CallInfo,
    ContextResult,
    LlmEvent,
    LlmRequest,
    Prefilled,
    TextDelta,
    ToolCallRequested,
    Usage,
)
from trunkline.gateway.pipeline import Peers
from trunkline.gateway.session import CallSession, SessionConfig
from trunkline.gateway.sink import EventSink
from trunkline.gateway.tools import HttpToolRunner, ToolExecutor
from trunkline.gateway.tools.security import BusAuditSink, TenantRateLimiter, ToolSecurity
from trunkline.gateway.transcripts import TranscriptPolicy, TranscriptSink
from trunkline.gateway.transports.base import CallStart
from trunkline.gateway.transports.websocket import MediaStreamTransport
from trunkline.gateway.web import GatewayWeb, TenantAuth
from trunkline.redaction.transcripts import TranscriptStore, new_key
from trunkline.state import CallStateStore
from trunkline.telemetry import logs
from trunkline.telemetry.setup import setup_telemetry
from trunkline.telemetry.sink import OtlpSink
from trunkline.telephony import stream_token
from trunkline.testing.leaks import without_ids

pytestmark = pytest.mark.integration

AUTH = TenantAuth("twilio-token", "stream-secret", frozenset({"support"}))
SILENCE = base64.b64encode(b"\xff" * 160).decode()
VOICE = base64.b64encode(b"\x20" * 160).decode()
SPOKEN = (
    "my card number is four one one one one one one one one one one one one one one one "
    "and my email is dana at example dot com"
)
CARD = "4111111111111111"
LEAKS = re.compile(r"4111|four one one one|dana at example|dana@example", re.IGNORECASE)


class PaymentLlm(LanguageModel):
    """Round 1 asks for the payment tool with the card; round 2 reads the card back."""

    def __init__(self, env: PeerEnv) -> None:
        super().__init__(env)
        self.rounds = 0

    async def _generate(self, request: LlmRequest) -> AsyncIterator[LlmEvent]:
        self.rounds += 1
        if self.rounds == 1:
            args = json.dumps({"card_number": CARD, "amount_usd": 45})
            yield ToolCallRequested("t1", "take_payment", args)
        else:
            yield TextDelta("Sorry, the card 4111 1111 1111 1111 was declined.")
        yield Usage(prompt_tokens=10, completion_tokens=8)

    async def _prefill(
        self,
        call: CallInfo,
        history: Sequence[Message],
        context: ContextResult | None,
        partial: str,
    ) -> Prefilled:
        return Prefilled(evaluated_tokens=0, reused_tokens=0, completed=True)


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    client = await Bus.connect(nats_server.url, name="pii-test")
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def payments() -> AsyncIterator[str]:
    async def charge(request: web.Request) -> web.Response:
        body = await request.json()
        return web.Response(status=402, text=f"card {body['card_number']} declined")

    app = web.Application()
    app.router.add_post("/charge", charge)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/charge"
    await runner.cleanup()


def _start(call_sid: str, token: str) -> str:
    fmt = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    params = {"tenant": "acme", "agent": "support", "token": token}
    start = {"streamSid": f"MZ{call_sid}", "callSid": call_sid, "accountSid": "AC1",
             "mediaFormat": fmt, "customParameters": params}  # fmt: skip
    return json.dumps({"event": "start", "streamSid": f"MZ{call_sid}", "start": start})


async def _play(ws: aiohttp.ClientWebSocketResponse, payload: str, marks: list[str]) -> None:
    await ws.send_str(json.dumps({"event": "media", "media": {"payload": payload}}))
    while True:
        try:
            msg = await ws.receive(timeout=0.02)
        except TimeoutError:
            return
        if msg.type is not aiohttp.WSMsgType.TEXT:
            return
        data = json.loads(msg.data)
        if data["event"] == "mark":
            marks.append(data["mark"]["name"])
            await ws.send_str(json.dumps({"event": "mark", "mark": data["mark"]}))


async def _until(ws: aiohttp.ClientWebSocketResponse, marks: list[str], n: int) -> None:
    for _ in range(600):
        if len(marks) >= n:
            return
        await _play(ws, SILENCE, marks)
    raise AssertionError(f"only {len(marks)} marks")


async def _events(bus: Bus, call_id: str, kinds: set[str]) -> list[Any]:
    spec = ConsumerSpec(stream="EVENTS", durable=f"pii-{call_id}",
                        filter_subject=f"trunkline.events.*.acme.{call_id}")  # fmt: skip
    got: list[Any] = []

    async def collect() -> None:
        async with aclosing(bus.durable_messages(spec)) as messages:
            async for delivery in messages:
                await delivery.ack()
                got.append(delivery)
                seen = [d.subject.split(".")[2] for d in got]
                if kinds <= set(seen) and seen.count("turn") >= 2:  # the greeting and the caller's
                    return

    try:
        await asyncio.wait_for(collect(), 30)
    except TimeoutError as exc:
        raise AssertionError(f"events seen: {[d.subject for d in got]}") from exc
    return got


async def _caller(url: str, store: TranscriptStore) -> None:
    """Twilio's side: the greeting plays, the caller speaks, the reply plays (the turn is
    recorded), the caller hangs up."""
    token = stream_token(AUTH.stream_secret, "acme", "support", "CAPII")
    async with aiohttp.ClientSession() as client, client.ws_connect(url) as ws:
        marks: list[str] = []
        await ws.send_str(_start("CAPII", token))
        await _until(ws, marks, 1)  # the greeting
        for _ in range(10):
            await _play(ws, VOICE, marks)
        for _ in range(600):  # until the caller's turn completed (greeting + 1 turn stored)
            if sum(n for _, c, n in await asyncio.to_thread(store.calls) if c == "CAPII") >= 2:
                break
            await _play(ws, SILENCE, marks)
        await ws.send_str(json.dumps({"event": "stop", "stop": {}}))
        async for _ in ws:
            pass


async def test_a_spoken_card_number_reaches_no_sink(  # noqa: PLR0915 - one call, every sink
    bus: Bus, redis: Redis, otlp_sink: OtlpSink, payments: str, tmp_path: Path
) -> None:
    log_stream = io.StringIO()
    logs.configure_logging("INFO", json=True, stream=log_stream)
    memory = InMemorySpanExporter()
    telemetry = setup_telemetry(
        "gateway", otlp_sink.endpoint, None, span_exporter=memory, set_global=False
    )
    tracer = telemetry.tracer("trunkline.gateway")
    clock = SystemClock()
    key = new_key()
    store = TranscriptStore(f"sqlite:///{tmp_path}/transcripts.db")
    events = EventSink(bus, CallStateStore(redis, ttl_seconds=60), "gw-pii")
    await events.start()
    policy = TranscriptPolicy(store_unredacted=True, retention_days=1, key=SecretStr(key))
    sink = TranscriptSink(events, store, {"acme": policy})
    done = asyncio.Event()
    http = httpx.AsyncClient()
    payment = ToolPolicy(
        "take_payment", payments,
        parameters={"type": "object", "properties": {"card_number": {"type": "string"},
                    "amount_usd": {"type": "number"}}, "required": ["card_number"]},
        read_only=False,
    )  # fmt: skip

    async def run_call(start: CallStart, transport: MediaStreamTransport) -> None:
        env = PeerEnv(clock, tracer)
        executor = ToolExecutor(
            ToolBook([payment]),
            HttpToolRunner(http),
            clock=clock,
            tracer=tracer,
            security=ToolSecurity(TenantRateLimiter(), BusAuditSink(bus)),
        )
        session = CallSession(
            CallInfo(start.call_id, start.tenant, start.agent, "v1", caller_address="+14155550132"),
            transport,
            Peers(
                FakeTranscriber(env, lambda audio: SPOKEN),
                FakeContext(env),
                PaymentLlm(env),
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
            tools=executor,
        )
        try:
            await session.run()
        finally:
            done.set()

    web_ = GatewayWeb({"acme": AUTH}, run_call, clock=clock, public_url="https://gw.example")
    server = TestServer(web_.app(), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        await _caller(str(server.make_url("/twilio/stream")), store)
        await asyncio.wait_for(done.wait(), 10)
        published = await _events(bus, "CAPII", {"call_started", "turn", "tool_audit"})
    finally:
        await server.close()
        await http.aclose()
        await asyncio.to_thread(telemetry.shutdown)
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, logs._TrunklineHandler)]:
            root.removeHandler(handler)

    # the call happened and said it: the card went through STT, the LLM, the tool, the reply
    spans = [s.to_json() for s in otlp_sink.spans]
    assert any('"turn.user_text"' in s for s in spans)
    log_text = log_stream.getvalue()
    assert "take_payment" in log_text  # the tool's failure was logged ...
    assert not LEAKS.search(without_ids(log_text)), log_text  # ... without the card
    for record in spans:
        assert not LEAKS.search(without_ids(record)), record
    for span in memory.get_finished_spans():
        assert not LEAKS.search(without_ids(span.to_json())), span.to_json()
    turn_events = [d for d in published if d.subject.startswith("trunkline.events.turn.")]
    assert any(b"[CARD]" in d.data for d in turn_events)
    assert any(b"[EMAIL]" in d.data for d in turn_events)
    for delivery in published:
        assert not LEAKS.search(without_ids(delivery.data.decode("utf-8", "replace"))), (
            delivery.subject
        )
        assert b"4155550132" not in delivery.data  # the caller's own number is redacted too
    state = await CallStateStore(redis, ttl_seconds=60).get("acme", "CAPII")
    assert state is not None
    assert state.history  # written while the call ran (how far depends on timing)
    assert not LEAKS.search(
        without_ids(state.model_dump_json())
    )  # the call state in Redis holds no PII
    # the tenant allows unredacted transcripts: encrypted at rest, readable with its key only
    sealed = store.ciphertexts("acme", "CAPII")
    assert sealed
    assert all(b"4111" not in blob and b"four one" not in blob for blob in sealed)
    said = [t.record["caller"] for t in store.read("acme", "CAPII", policy.key_bytes)]
    assert SPOKEN in said
    store.close()
