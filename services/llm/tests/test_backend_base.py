"""The ABC's public ``generate``: TTFT, usage, retries, deadlines, cancellation, metrics, spans."""

import asyncio
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry

from trunkline.llm.backends import (
    BackendUnavailableError,
    CallPolicy,
    GenerationTimeoutError,
    LlmBackend,
    LlmMetrics,
)
from trunkline.llm.core import (
    BackendEvent,
    ChatMessage,
    Done,
    GenerationEvent,
    GenerationRequest,
    MalformedToolCall,
    Stop,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    Usage,
)
from trunkline.telemetry.prometheus import PrometheusReader, registry_for
from trunkline.testing.telemetry_fixtures import SpanRecorder

pytestmark = pytest.mark.unit

REQUEST = GenerationRequest(messages=(ChatMessage("user", "hi"),), model="m")


class ScriptedBackend(LlmBackend):
    """A fake backend: each attempt plays the next script; ``None`` blocks until closed."""

    name = "scripted"
    tool_mode = "native"

    def __init__(self, scripts: Sequence[Sequence[BackendEvent | Exception | None]], **kw: object):
        super().__init__(**kw)  # type: ignore[arg-type]
        self.scripts = list(scripts)
        self.attempts = 0
        self.closed = 0
        self.blocked = asyncio.Event()
        self.registry = CollectorRegistry()

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def _impl(self, request: GenerationRequest) -> AsyncGenerator[BackendEvent, None]:
        script = self.scripts[self.attempts]
        self.attempts += 1
        try:
            for item in script:
                if item is None:
                    self.blocked.set()
                    await asyncio.Event().wait()
                elif isinstance(item, Exception):
                    raise item
                else:
                    yield item
        finally:
            self.closed += 1


def backend(
    *scripts: Sequence[BackendEvent | Exception | None], **policy: float
) -> ScriptedBackend:
    reader = PrometheusReader()  # read as the service's /metrics reads the OTel instruments
    b = ScriptedBackend(
        scripts,
        policy=CallPolicy(retry_backoff_s=0.0, **policy),  # type: ignore[arg-type]
        metrics=LlmMetrics(MeterProvider(metric_readers=[reader]).get_meter("test")),
    )
    b.registry = registry_for(reader)
    return b


def sample(b: ScriptedBackend, name: str, **labels: str) -> float | None:
    return b.registry.get_sample_value(name, {"backend": b.name, **labels})


async def collect(b: LlmBackend) -> list[GenerationEvent]:
    return [event async for event in b.generate(REQUEST)]


async def test_stream_ends_with_done_carrying_usage_reason_and_ttft(
    span_recorder: SpanRecorder,
) -> None:
    call = ToolCall("c1", "lookup", "{}")
    b = backend(
        [
            TextDelta(""),
            TextDelta("Hello"),
            ToolCallEvent(call),
            Usage(12, 5),
            Stop("tool_calls"),
        ]
    )
    events = await collect(b)
    assert events[:2] == [TextDelta("Hello"), ToolCallEvent(call)]
    done = events[-1]
    assert isinstance(done, Done)
    assert done.finish_reason == "tool_calls"
    assert done.usage == Usage(12, 5)
    assert done.ttft_s is not None
    assert 0 <= done.ttft_s <= done.duration_s
    assert sample(b, "llm_tokens_total", kind="completion") == 5
    assert sample(b, "llm_generations_total", outcome="ok") == 1
    assert sample(b, "llm_tool_calls_total", status="ok") == 1
    assert sample(b, "llm_ttft_s_count") == 1
    span = span_recorder.named("llm.generate")
    assert span.attributes is not None
    assert span.attributes["gen_ai.usage.output_tokens"] == 5
    assert span.attributes["llm.finish_reason"] == "tool_calls"
    assert "llm.ttft_ms" in span.attributes
    assert [e.name for e in span.events] == ["first_token"]


async def test_unavailable_before_first_token_is_retried() -> None:
    b = backend([BackendUnavailableError("down")], [TextDelta("ok"), Stop("stop")], retries=1)
    events = await collect(b)
    assert events[0] == TextDelta("ok")
    assert b.attempts == 2


async def test_retries_are_bounded() -> None:
    b = backend([BackendUnavailableError("a")], [BackendUnavailableError("b")], retries=1)
    with pytest.raises(BackendUnavailableError, match="b"):
        await collect(b)
    assert sample(b, "llm_generations_total", outcome="error") == 1


async def test_no_retry_once_text_was_streamed() -> None:
    b = backend([TextDelta("half"), BackendUnavailableError("gone")], [TextDelta("x")], retries=3)
    seen: list[GenerationEvent] = []

    async def consume() -> None:
        async for event in b.generate(REQUEST):
            seen.append(event)

    with pytest.raises(BackendUnavailableError):
        await consume()
    assert seen == [TextDelta("half")]
    assert b.attempts == 1


async def test_no_first_token_within_the_deadline_times_out(span_recorder: SpanRecorder) -> None:
    b = backend([None], [None], first_token_timeout_s=0.05, retries=1)
    with pytest.raises(GenerationTimeoutError, match="no first token"):
        await collect(b)
    assert b.attempts == 2
    assert b.closed == 2
    assert sample(b, "llm_generations_total", outcome="timeout") == 1
    assert [e.name for e in span_recorder.named("llm.generate").events][:1] == ["retry"]


async def test_total_deadline_applies_after_the_first_token() -> None:
    b = backend([TextDelta("a"), None], total_timeout_s=0.1, retries=0)
    with pytest.raises(GenerationTimeoutError, match="no end of generation"):
        await collect(b)


async def test_consumer_closing_the_stream_closes_the_backend(span_recorder: SpanRecorder) -> None:
    b = backend([TextDelta("a"), TextDelta("b"), None])
    async with aclosing(b.generate(REQUEST)) as stream:
        async for event in stream:
            assert event == TextDelta("a")
            break
    assert b.closed == 1
    assert sample(b, "llm_generations_total", outcome="cancelled") == 1
    assert "cancelled" in [e.name for e in span_recorder.named("llm.generate").events]


async def test_cancelling_the_consumer_task_closes_a_blocked_backend() -> None:
    b = backend([TextDelta("a"), None])
    task = asyncio.create_task(collect(b))
    await b.blocked.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert b.closed == 1
    assert sample(b, "llm_generations_total", outcome="cancelled") == 1


async def test_malformed_tool_call_is_counted() -> None:
    b = backend([Stop("stop")])
    b._malformed_tool_call(MalformedToolCall("{x", "not JSON"))
    assert sample(b, "llm_tool_calls_total", status="malformed") == 1
