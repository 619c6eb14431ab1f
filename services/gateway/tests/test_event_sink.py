"""The event sink on a real NATS (JetStream) and a real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing

import pytest
from redis.asyncio import Redis

from trunkline.bus import Bus, ConsumerSpec, Delivery
from trunkline.devservers import NatsServer
from trunkline.gateway.core.events import Message, State
from trunkline.gateway.core.tools import ToolStatus
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.records import CallSummary, ToolRecord, TurnRecord
from trunkline.gateway.sink import EventSink
from trunkline.proto.common.v1 import call_pb2
from trunkline.proto.events.v1 import events_pb2
from trunkline.state import CallStateStore
from trunkline.testing.telemetry_fixtures import SpanRecorder

pytestmark = pytest.mark.integration


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    client = await Bus.connect(nats_server.url, name="gateway-test")
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


async def read(bus: Bus, call: CallInfo, count: int) -> list[Delivery]:
    spec = ConsumerSpec(
        stream="EVENTS",
        durable=f"test-{call.call_id}",
        filter_subject=f"trunkline.events.*.{call.tenant}.{call.call_id}",
    )
    got: list[Delivery] = []

    async def collect() -> None:
        async with aclosing(bus.durable_messages(spec)) as messages:
            async for delivery in messages:
                await delivery.ack()
                got.append(delivery)
                if len(got) == count:
                    return

    await asyncio.wait_for(collect(), 10)
    return got


async def test_call_events_on_jetstream_and_state_in_redis(
    bus: Bus, redis: Redis, redis_url: str, span_recorder: SpanRecorder
) -> None:
    call = CallInfo(f"CA{uuid.uuid4().hex}", "acme", "acme-dental", "1.0.0", dialed="+15550001")
    sink = EventSink(bus, CallStateStore(redis, ttl_seconds=60), "gw-1")
    await sink.start()
    tracer = span_recorder.provider.get_tracer("test")
    with tracer.start_as_current_span("call"):
        await sink.call_started(call, "twilio")
        history = [
            Message("agent", "Hi, this is Ava."),
            Message("user", "when do you open"),
            Message("agent", "We open at", truncated=True),
        ]
        await sink.state_changed(call, State.SPEAKING, history[:2])
        await sink.state_changed(call, State.LISTENING, history)
        record = TurnRecord(
            call,
            turn_id=2,
            user_text="when do you open",
            agent_text="We open at",
            generated_text="We open at eight on weekdays.",
            interrupted=True,
            stage_s={"stt": 0.08, "context": 0.02, "llm_ttft": 0.09, "tts_ttfa": 0.07},
            voice_to_voice_s=0.41,
            prompt_tokens=120,
            completion_tokens=8,
            cached_prompt_tokens=100,
            tts_audio_s=1.5,
            caller_audio_s=1.2,
            cached=False,
            retrieval_confidence=0.8,
            citations=("faq#1",),
            tool_calls=[
                ToolRecord(
                    "t1",
                    "lookup_account",
                    '{"account_id":"441729"}',
                    ToolStatus.SUCCEEDED,
                    '{"name":"Dana"}',
                    0.012,
                ),
                ToolRecord("t2", "issue_refund", "{}", ToolStatus.FORBIDDEN, '{"error":"x"}'),
                ToolRecord("t3", "cancel_plan", "{}", ToolStatus.NEEDS_APPROVAL, "{}"),
            ],
        )
        await sink.turn_completed(record)
        await sink.call_ended(CallSummary(call, "caller hung up", 1, 12.5))

    started, turn, ended = await read(bus, call, 3)
    assert started.subject == f"trunkline.events.call_started.acme.{call.call_id}"
    assert "traceparent" in started.headers
    event = started.decode(events_pb2.CallStarted)
    assert event.transport == call_pb2.TRANSPORT_TWILIO
    assert event.gateway_id == "gw-1"
    assert event.dialed == "+15550001"
    assert event.context.agent.version == "1.0.0"
    assert event.event_id

    assert turn.subject == f"trunkline.events.turn.acme.{call.call_id}"
    done = turn.decode(events_pb2.TurnCompleted)
    assert done.context.agent.name == "acme-dental"
    assert done.context.turn_index == 0
    assert (done.caller_transcript, done.agent_reply) == ("when do you open", "We open at")
    assert done.agent_reply_generated == "We open at eight on weekdays."
    assert done.truncated
    assert not done.cache_hit
    stages = {s.stage: s.duration.ToMilliseconds() for s in done.stages}
    assert stages == {
        "stt.final": 80,
        "context.resolve": 20,
        "llm.time_to_first_token": 90,
        "tts.time_to_first_audio": 70,
        "turn.response": 410,
    }
    assert done.response_time.ToMilliseconds() == 410
    assert (done.usage.input_tokens, done.usage.output_tokens) == (120, 8)
    assert done.usage.audio_out_seconds == pytest.approx(1.5)
    assert done.usage.characters == len("We open at")  # spoken characters: the ledger's TTS unit
    assert done.usage.cached_input_tokens == 100  # priced at the cached rate by the ledger
    assert [c.id for c in done.citations] == ["faq#1"]
    assert [(t.call.id, t.call.name, t.status) for t in done.tool_calls] == [
        ("t1", "lookup_account", events_pb2.TOOL_CALL_STATUS_SUCCEEDED),
        ("t2", "issue_refund", events_pb2.TOOL_CALL_STATUS_FORBIDDEN),
        ("t3", "cancel_plan", events_pb2.TOOL_CALL_STATUS_NEEDS_APPROVAL),
    ]
    lookup = done.tool_calls[0]
    # events carry redacted text (issue 13): the account number is not on the bus
    assert lookup.call.arguments_json == '{"account_id":"[ACCOUNT]"}'
    assert lookup.result_json == '{"name":"Dana"}'
    assert lookup.duration.ToMilliseconds() == 12

    check_ended(ended.decode(events_pb2.CallEnded))
    await check_state(redis_url, call)


def check_ended(finished: events_pb2.CallEnded) -> None:
    assert finished.reason == events_pb2.END_REASON_CALLER_HANGUP
    assert finished.turn_count == 1
    assert finished.duration.ToMilliseconds() == 12500
    assert finished.usage.input_tokens == 120
    assert finished.usage.audio_in_seconds == pytest.approx(1.2)
    assert finished.usage.characters == len("We open at")
    assert finished.usage.cached_input_tokens == 100


async def check_state(redis_url: str, call: CallInfo) -> None:
    """A second store on a fresh connection (another gateway, or this one restarted) reads it."""
    other = Redis.from_url(redis_url)
    try:
        state = await CallStateStore(other, ttl_seconds=60).get("acme", call.call_id)
    finally:
        await other.aclose()
    assert state is not None
    assert state.node == "ended"
    assert state.agent_version == "1.0.0"
    assert [(t.role, t.text, t.truncated) for t in state.history] == [
        ("assistant", "Hi, this is Ava.", False),
        ("user", "when do you open", False),
        ("assistant", "We open at", True),
    ]
    assert state.history[0].agent_version == "1.0.0"


async def test_state_keeps_the_times_of_earlier_turns(bus: Bus, redis: Redis) -> None:
    call = CallInfo(f"CA{uuid.uuid4().hex}", "acme", "acme-dental", "1.0.0")
    store = CallStateStore(redis, ttl_seconds=60)
    sink = EventSink(bus, store, "gw-1")
    await sink.start()
    first = [Message("agent", "Hello.")]
    await sink.state_changed(call, State.LISTENING, first)  # no call_started: created on demand
    before = await store.get("acme", call.call_id)
    await sink.state_changed(call, State.THINKING, [*first, Message("user", "hi")])
    after = await store.get("acme", call.call_id)
    assert before is not None
    assert after is not None
    assert after.node == "thinking"
    assert len(after.history) == 2
    assert after.history[0].at == before.history[0].at
    assert after.version == before.version + 1
