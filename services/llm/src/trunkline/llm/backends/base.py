"""The backend ABC. ``generate`` owns retries, deadlines, metrics and tracing; a backend writes
only ``_impl`` (and ``count_tokens``, ``start``, ``aclose``).

Cancellation: a consumer that stops iterating (``aclose()``, ``break`` inside ``aclosing``, or
its task being cancelled) closes the backend's ``_impl`` at once, which stops generation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import ClassVar

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from trunkline.llm.core.prompt import ToolMode
from trunkline.llm.core.tool_protocol import MalformedToolCall
from trunkline.llm.core.types import (
    BackendEvent,
    Done,
    GenerationEvent,
    GenerationRequest,
    PrefillResult,
    Stop,
    TextDelta,
    ToolCallEvent,
    Usage,
)

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
_RATE_BUCKETS = (5.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 150.0, 200.0, 400.0, 800.0)


class LlmError(Exception):
    """Generation failed."""


class BackendUnavailableError(LlmError):
    """The backend could not be reached or refused the request; retried before the first token."""


class GenerationTimeoutError(LlmError):
    """No first token (or no end) within the policy's deadline."""


@dataclass(frozen=True, slots=True)
class CallPolicy:
    first_token_timeout_s: float = 5.0
    total_timeout_s: float = 60.0
    retries: int = 1  # extra attempts, only while nothing has been streamed yet
    retry_backoff_s: float = 0.05


class LlmMetrics:
    """OpenTelemetry instruments of the LLM stage; ``setup_telemetry``'s global MeterProvider
    serves them on the process's ``/metrics`` (``llm_ttft_s``, ``llm_generations_total``, ...)."""

    def __init__(self, meter: metrics.Meter | None = None) -> None:
        meter = meter or metrics.get_meter("trunkline.llm")
        self.ttft = meter.create_histogram(
            "llm.ttft",
            unit="s",
            description="Request start to first text or tool call.",
            explicit_bucket_boundaries_advisory=_LATENCY_BUCKETS,
        )
        self.request_ttft = meter.create_histogram(
            "llm.request.ttft",
            unit="s",
            description="Generate request received to first text or tool call (prompt compile "
            "included), by agent, version and shadow: a rollout's candidate beside stable.",
            explicit_bucket_boundaries_advisory=_LATENCY_BUCKETS,
        )
        self.duration = meter.create_histogram(
            "llm.generation.duration",
            unit="s",
            description="Whole generation, request start to end of stream.",
            explicit_bucket_boundaries_advisory=_LATENCY_BUCKETS,
        )
        self.tokens_per_second = meter.create_histogram(
            "llm.tokens_per_second",
            description="Completion tokens per second after the first token.",
            explicit_bucket_boundaries_advisory=_RATE_BUCKETS,
        )
        self.tokens = meter.create_counter(
            "llm.tokens",
            description="Tokens by kind: prompt, prompt_cached (reused unevaluated), completion.",
        )
        self.generations = meter.create_counter(
            "llm.generations", description="Generations by outcome (ok, cancelled, timeout, error)."
        )
        self.tool_calls = meter.create_counter(
            "llm.tool_calls",
            description="Tool calls parsed from model output, by status (ok, malformed).",
        )


class LlmBackend(ABC):
    """One way to run a chat model. Subclasses set ``name`` and ``tool_mode``."""

    name: ClassVar[str]
    tool_mode: ClassVar[ToolMode]
    message_overhead: ClassVar[int] = 4  # tokens the chat template adds per message

    def __init__(
        self,
        *,
        policy: CallPolicy | None = None,
        metrics: LlmMetrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.policy = policy or CallPolicy()
        self.metrics = metrics or LlmMetrics()
        self._tracer = tracer or trace.get_tracer("trunkline.llm")

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Load the model or open connections. Idempotent."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what ``start`` acquired."""

    async def ready(self) -> bool:
        """Whether a generation can run now (model loaded, server answering)."""
        return True

    async def prefill(self, request: GenerationRequest) -> PrefillResult:
        """Evaluate ``request``'s prompt into the backend's cache ahead of the generation that
        will extend it. Best effort, and a generation takes precedence; a backend that cannot
        fill its cache ahead (a remote server) does nothing and says so."""
        return PrefillResult(prompt_tokens=0, evaluated=0, reused=0, completed=False)

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this backend's model (an estimate where it cannot know)."""

    @abstractmethod
    def _impl(self, request: GenerationRequest) -> AsyncGenerator[BackendEvent, None]:
        """Stream one generation. Raise :class:`BackendUnavailableError` for a retryable failure."""

    def _malformed_tool_call(self, item: MalformedToolCall) -> None:
        """Record a tool call the model botched; it is neither spoken nor executed."""
        log.warning("llm: dropped malformed tool call (%s): %.200r", item.reason, item.raw)
        self.metrics.tool_calls.add(1, {"backend": self.name, "status": "malformed"})

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        """Stream text deltas and tool calls, then one :class:`Done` with usage and TTFT."""
        span = self._tracer.start_span(
            "llm.generate",
            attributes={
                "gen_ai.system": self.name,
                "gen_ai.request.model": request.model or "",
                "gen_ai.request.max_tokens": request.sampling.max_tokens,
                "gen_ai.request.temperature": request.sampling.temperature,
                "llm.messages": len(request.messages),
                "llm.tools": len(request.tools),
            },
        )
        outcome = "error"
        try:
            async with aclosing(self._attempts(request, span)) as events:
                async for event in events:
                    yield event
            outcome = "ok"
        except (GeneratorExit, asyncio.CancelledError):
            outcome = "cancelled"
            span.add_event("cancelled")
            raise
        except GenerationTimeoutError as exc:
            outcome = "timeout"
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            raise
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            raise
        finally:
            self.metrics.generations.add(1, {"backend": self.name, "outcome": outcome})
            span.set_attribute("llm.outcome", outcome)
            span.end()

    async def _attempts(
        self, request: GenerationRequest, span: Span
    ) -> AsyncGenerator[GenerationEvent, None]:
        attempt = 0
        while True:
            started = time.perf_counter()
            streamed = False
            try:
                async with aclosing(self._one_attempt(request, span, started)) as events:
                    async for event in events:
                        streamed = True
                        yield event
                return
            except (BackendUnavailableError, GenerationTimeoutError) as exc:
                if streamed or attempt >= self.policy.retries:
                    raise
                attempt += 1
                span.add_event("retry", {"attempt": attempt, "error": str(exc)})
                log.warning("llm %s: retrying after %s", self.name, exc)
                await asyncio.sleep(self.policy.retry_backoff_s * attempt)

    async def _one_attempt(
        self, request: GenerationRequest, span: Span, started: float
    ) -> AsyncGenerator[GenerationEvent, None]:
        loop = asyncio.get_running_loop()
        first_deadline = loop.time() + self.policy.first_token_timeout_s
        end_deadline = loop.time() + self.policy.total_timeout_s
        ttft: float | None = None
        usage: Usage | None = None
        reason = "stop"
        completion_events = 0
        async with aclosing(self._impl(request)) as stream:
            iterator = aiter(stream)
            while True:
                deadline = first_deadline if ttft is None else end_deadline
                try:
                    async with asyncio.timeout_at(min(deadline, end_deadline)):
                        event = await anext(iterator)
                except StopAsyncIteration:
                    break
                except TimeoutError as exc:
                    what = "first token" if ttft is None else "end of generation"
                    raise GenerationTimeoutError(f"llm {self.name}: no {what} in time") from exc
                if isinstance(event, Usage):
                    usage = event
                    continue
                if isinstance(event, Stop):
                    reason = event.reason
                    continue
                if isinstance(event, TextDelta) and not event.text:
                    continue
                if ttft is None:
                    ttft = time.perf_counter() - started
                    self.metrics.ttft.record(ttft, {"backend": self.name})
                    span.add_event("first_token")
                    span.set_attribute("llm.ttft_ms", round(ttft * 1000, 2))
                if isinstance(event, ToolCallEvent):
                    self.metrics.tool_calls.add(1, {"backend": self.name, "status": "ok"})
                completion_events += 1
                yield event
        duration = time.perf_counter() - started
        self._observe_end(span, usage, ttft, duration, reason)
        yield Done(finish_reason=reason, usage=usage, ttft_s=ttft, duration_s=duration)

    def _observe_end(
        self, span: Span, usage: Usage | None, ttft: float | None, duration: float, reason: str
    ) -> None:
        self.metrics.duration.record(duration, {"backend": self.name})
        span.set_attribute("llm.finish_reason", reason)
        if usage is None:
            return
        tokens = self.metrics.tokens
        tokens.add(usage.prompt_tokens, {"backend": self.name, "kind": "prompt"})
        tokens.add(usage.cached_prompt_tokens, {"backend": self.name, "kind": "prompt_cached"})
        tokens.add(usage.completion_tokens, {"backend": self.name, "kind": "completion"})
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        span.set_attribute("llm.prompt_tokens_cached", usage.cached_prompt_tokens)
        span.set_attribute(
            "llm.prompt_tokens_evaluated", usage.prompt_tokens - usage.cached_prompt_tokens
        )
        span.set_attribute("llm.usage_estimated", usage.estimated)
        if ttft is not None and usage.completion_tokens > 1 and duration > ttft:
            rate = (usage.completion_tokens - 1) / (duration - ttft)
            self.metrics.tokens_per_second.record(rate, {"backend": self.name})
            span.set_attribute("llm.tokens_per_second", round(rate, 1))
