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

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer
from prometheus_client import CollectorRegistry, Counter, Histogram

from trunkline.llm.core.prompt import ToolMode
from trunkline.llm.core.tool_protocol import MalformedToolCall
from trunkline.llm.core.types import (
    BackendEvent,
    Done,
    GenerationEvent,
    GenerationRequest,
    Stop,
    TextDelta,
    ToolCallEvent,
    Usage,
)

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)


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
    """Prometheus instruments of the LLM stage, registered in the registry given."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.ttft = Histogram(
            "trunkline_llm_ttft_seconds",
            "Request start to first text or tool call.",
            ["backend"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.duration = Histogram(
            "trunkline_llm_generation_seconds",
            "Whole generation, request start to end of stream.",
            ["backend"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.tokens_per_second = Histogram(
            "trunkline_llm_tokens_per_second",
            "Completion tokens per second after the first token.",
            ["backend"],
            buckets=(5, 10, 20, 40, 60, 80, 100, 150, 200, 400, 800),
            registry=registry,
        )
        self.tokens = Counter(
            "trunkline_llm_tokens",
            "Tokens used, by kind (prompt, completion).",
            ["backend", "kind"],
            registry=registry,
        )
        self.generations = Counter(
            "trunkline_llm_generations",
            "Generations by outcome (ok, cancelled, timeout, error).",
            ["backend", "outcome"],
            registry=registry,
        )
        self.tool_calls = Counter(
            "trunkline_llm_tool_calls",
            "Tool calls parsed from model output, by status (ok, malformed).",
            ["backend", "status"],
            registry=registry,
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
        self.metrics = metrics or LlmMetrics(CollectorRegistry())
        self._tracer = tracer or trace.get_tracer("trunkline.llm")

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Load the model or open connections. Idempotent."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what ``start`` acquired."""

    async def ready(self) -> bool:
        """Whether a generation can run now (model loaded, server answering)."""
        return True

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this backend's model (an estimate where it cannot know)."""

    @abstractmethod
    def _impl(self, request: GenerationRequest) -> AsyncGenerator[BackendEvent, None]:
        """Stream one generation. Raise :class:`BackendUnavailableError` for a retryable failure."""

    def _malformed_tool_call(self, item: MalformedToolCall) -> None:
        """Record a tool call the model botched; it is neither spoken nor executed."""
        log.warning("llm: dropped malformed tool call (%s): %.200r", item.reason, item.raw)
        self.metrics.tool_calls.labels(self.name, "malformed").inc()

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
            self.metrics.generations.labels(self.name, outcome).inc()
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
                    self.metrics.ttft.labels(self.name).observe(ttft)
                    span.add_event("first_token")
                    span.set_attribute("llm.ttft_ms", round(ttft * 1000, 2))
                if isinstance(event, ToolCallEvent):
                    self.metrics.tool_calls.labels(self.name, "ok").inc()
                completion_events += 1
                yield event
        duration = time.perf_counter() - started
        self._observe_end(span, usage, ttft, duration, reason)
        yield Done(finish_reason=reason, usage=usage, ttft_s=ttft, duration_s=duration)

    def _observe_end(
        self, span: Span, usage: Usage | None, ttft: float | None, duration: float, reason: str
    ) -> None:
        self.metrics.duration.labels(self.name).observe(duration)
        span.set_attribute("llm.finish_reason", reason)
        if usage is None:
            return
        self.metrics.tokens.labels(self.name, "prompt").inc(usage.prompt_tokens)
        self.metrics.tokens.labels(self.name, "completion").inc(usage.completion_tokens)
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        span.set_attribute("llm.usage_estimated", usage.estimated)
        if ttft is not None and usage.completion_tokens > 1 and duration > ttft:
            rate = (usage.completion_tokens - 1) / (duration - ttft)
            self.metrics.tokens_per_second.labels(self.name).observe(rate)
            span.set_attribute("llm.tokens_per_second", round(rate, 1))
