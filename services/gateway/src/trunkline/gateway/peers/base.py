"""Small ABCs for the gateway's peers. The public method owns deadlines, retries, metrics and
tracing; a client (gRPC, or a fake in tests) implements only the ``_impl`` method."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from opentelemetry import trace
from opentelemetry.trace import Span, Tracer

from trunkline.gateway.core.clock import Clock
from trunkline.gateway.core.events import Message
from trunkline.gateway.metrics import GatewayMetrics, version_labels
from trunkline.gateway.peers.retry import RetryPolicy, within
from trunkline.gateway.peers.types import (
    CallInfo,
    ContextResult,
    LlmEvent,
    LlmRequest,
    Prefilled,
    StoredAnswer,
    Transcript,
)

T = TypeVar("T")
log = logging.getLogger(__name__)


class PeerUnavailableError(Exception):
    """A failure worth retrying: the peer is down, overloaded or timed out."""


@dataclass(frozen=True, slots=True)
class PeerEnv:
    clock: Clock
    tracer: Tracer
    metrics: GatewayMetrics | None = None


class Peer(ABC):  # noqa: B024 (shared machinery; the abstract methods are per kind)
    stage: str = "peer"

    def __init__(self, env: PeerEnv, policy: RetryPolicy | None = None) -> None:
        self.env = env
        self.policy = policy or RetryPolicy()

    def _failed(self, span: Span, attempt: int, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        log.warning("%s attempt %d failed: %s", self.stage, attempt, reason)
        span.add_event("attempt failed", {"attempt": attempt, "reason": reason})
        if self.env.metrics is not None:
            self.env.metrics.peer_failures.add(1, {"stage": self.stage})

    def _observe(self, stage: str, seconds: float, call: CallInfo | None = None) -> None:
        """``call``: labels the series with its agent and version."""
        if self.env.metrics is not None:
            labels = version_labels(call.agent, call.agent_version) if call else None
            self.env.metrics.observe_stage(stage, seconds, labels)

    async def _unary(
        self,
        factory: Callable[[], Awaitable[T]],
        stage: str | None = None,
        call: CallInfo | None = None,
    ) -> T:
        """``stage``: the span name and metric label (default: the peer's stage); ``call``:
        the metric's agent and version labels."""
        stage = stage or self.stage
        clock = self.env.clock
        with self.env.tracer.start_as_current_span(stage) as span:
            started = clock.now()
            attempt = 0
            while True:
                attempt += 1
                try:
                    result = await within(clock, self.policy.timeout_s, factory())
                except (TimeoutError, PeerUnavailableError) as exc:
                    self._failed(span, attempt, exc)
                    if self.policy.exhausted(attempt):
                        raise
                    await clock.sleep(self.policy.delay(attempt))
                    continue
                span.set_attribute("attempts", attempt)
                self._observe(stage, clock.now() - started, call)
                return result

    async def _stream(
        self,
        factory: Callable[[], AsyncIterator[T]],
        first_stage: str,
        call: CallInfo | None = None,
    ) -> AsyncIterator[T]:
        """Retry until the first item arrives (within the deadline); after that, a stall longer
        than the deadline ends the stream with ``TimeoutError``."""
        clock = self.env.clock
        span = self.env.tracer.start_span(self.stage)
        started = clock.now()
        try:
            attempt = 0
            while True:
                attempt += 1
                with trace.use_span(span, end_on_exit=False):
                    stream = factory()
                try:
                    with trace.use_span(span, end_on_exit=False):
                        first = await within(clock, self.policy.timeout_s, anext(stream))
                except StopAsyncIteration:
                    return
                except (TimeoutError, PeerUnavailableError) as exc:
                    await _close(stream)
                    self._failed(span, attempt, exc)
                    if self.policy.exhausted(attempt):
                        raise
                    await clock.sleep(self.policy.delay(attempt))
                    continue
                break
            first_s = clock.now() - started
            span.set_attribute("attempts", attempt)
            span.set_attribute(f"{first_stage}_ms", round(first_s * 1000, 1))
            span.add_event(first_stage)
            self._observe(first_stage, first_s, call)
            try:
                yield first
                while True:
                    try:
                        with trace.use_span(span, end_on_exit=False):
                            item = await within(clock, self.policy.timeout_s, anext(stream))
                    except StopAsyncIteration:
                        break
                    yield item
            finally:
                await _close(stream)
            self._observe(self.stage, clock.now() - started, call)
        except BaseException as exc:
            span.record_exception(exc)
            raise
        finally:
            span.end()


async def _close(stream: AsyncIterator[object]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # a broken stream may fail to close: it is dropped anyway
            log.debug("closing a failed stream failed", exc_info=True)


class Transcriber(Peer):
    """STT: the final transcript of one utterance (16 kHz PCM16) and its confidence."""

    stage = "stt"

    async def transcribe(
        self, call: CallInfo, audio: bytes, stage: str | None = None
    ) -> Transcript:
        """``stage``: another label for the span and stage metric (a read-ahead is not a turn's
        STT and must not skew its latency histogram)."""
        return await self._unary(lambda: self._transcribe(call, audio), stage, call)

    async def close(self) -> None:
        """The call is over: release what the transcriber holds open (a stream). Default:
        nothing."""

    @abstractmethod
    async def _transcribe(self, call: CallInfo, audio: bytes) -> Transcript: ...


class ContextSource(Peer):
    """Context service: a context block (or a cached answer) for the caller's query."""

    stage = "context"

    async def resolve(
        self,
        call: CallInfo,
        query: str,
        entities: Mapping[str, str] | None = None,
        prefer_first: tuple[str, ...] = (),
        stage: str | None = None,
    ) -> ContextResult:
        """``entities``: call-state values the live sources need (``account_id`` ...);
        ``prefer_first``: citations the LLM's prompt cache holds, to come first in the block;
        ``stage``: another label for the span and stage metric (a read-ahead's lookup)."""
        state = dict(entities or {})
        return await self._unary(
            lambda: self._resolve(call, query, state, prefer_first), stage, call
        )

    async def store_answer(self, call: CallInfo, answer: StoredAnswer) -> bool:
        """Offer a finished turn's answer to the semantic cache, with what the turn did: the
        context service decides. One attempt within the deadline (a refusal, ``False``, is
        normal and not retried). Counted as stored or refused."""
        clock = self.env.clock
        with self.env.tracer.start_as_current_span("context.store_answer") as span:
            span.set_attribute("cache.kb_version", answer.kb_version)
            span.set_attribute("cache.reply_source", answer.reply_source)
            span.set_attribute("cache.grounded", answer.grounded)
            span.set_attribute("cache.uses_live_data", answer.uses_live_data)
            started = clock.now()
            try:
                stored = await within(
                    clock, self.policy.timeout_s, self._store_answer(call, answer)
                )
            except (TimeoutError, PeerUnavailableError) as exc:
                self._failed(span, 1, exc)
                raise
            span.set_attribute("cache.stored", stored)
            self._observe("context_store", clock.now() - started, call)
            self.count_store("stored" if stored else "refused")
            return stored

    def count_store(self, outcome: str) -> None:
        """``outcome``: stored or refused (the context service's reason is on the span)."""
        if self.env.metrics is not None:
            self.env.metrics.cache_stores.add(1, {"outcome": outcome})

    @abstractmethod
    async def _resolve(
        self,
        call: CallInfo,
        query: str,
        entities: Mapping[str, str],
        prefer_first: tuple[str, ...] = (),
    ) -> ContextResult: ...

    @abstractmethod
    async def _store_answer(self, call: CallInfo, answer: StoredAnswer) -> bool:
        """Store one heard answer in the semantic cache; True when the service stored it."""


class LanguageModel(Peer):
    """LLM service: a stream of text deltas, tool calls and usage; and a prefill of the known
    part of the next prompt while the caller speaks."""

    stage = "llm"

    def generate(self, request: LlmRequest) -> AsyncIterator[LlmEvent]:
        return self._stream(lambda: self._generate(request), "llm_ttft", request.call)

    async def prefill(
        self,
        call: CallInfo,
        history: Sequence[Message],
        context: ContextResult | None = None,
        partial: str = "",
    ) -> Prefilled | None:
        """Have the LLM evaluate the system prompt, tools, ``history`` (and a context block and
        the caller's turn so far, ``partial``, read ahead while they speak) before the turn that
        follows. Best effort, off the turn's path: one attempt; a failure is logged, None."""
        with self.env.tracer.start_as_current_span("llm.prefill") as span:
            try:
                done = await within(
                    self.env.clock,
                    self.policy.timeout_s,
                    self._prefill(call, history, context, partial),
                )
            except Exception as exc:  # nothing depends on a prefill
                log.info("llm prefill failed (the next turn evaluates it): %r", exc)
                span.set_attribute("llm.prefill_failed", f"{type(exc).__name__}: {exc}")
                return None
            span.set_attribute("llm.prefill_evaluated", done.evaluated_tokens)
            span.set_attribute("llm.prefill_reused", done.reused_tokens)
            span.set_attribute("llm.prefill_completed", done.completed)
            return done

    @abstractmethod
    def _generate(self, request: LlmRequest) -> AsyncIterator[LlmEvent]: ...

    @abstractmethod
    async def _prefill(
        self,
        call: CallInfo,
        history: Sequence[Message],
        context: ContextResult | None,
        partial: str,
    ) -> Prefilled: ...


class SpokenReply:
    """One reply's clauses, spoken in order (``say``), then ``close``. This default speaks each
    clause with its own ``synthesize``; a backend with a streaming contract overrides
    ``Synthesizer.reply`` to use one stream per reply (clauses in, cancel on barge-in)."""

    def __init__(self, tts: Synthesizer, call: CallInfo) -> None:
        self.tts = tts
        self.call = call

    def say(self, text: str) -> AsyncIterator[bytes]:
        """The clause's audio; closing the iterator early drops the rest of it."""
        return self.tts.synthesize(self.call, text)

    def close(self) -> None:
        """The reply is over (or was cut off): release its stream. Never blocks."""


class Synthesizer(Peer):
    """TTS service: PCM16 audio at ``sample_rate`` for one clause, streamed. The rate is the
    call's transport output rate, so reply audio is resampled once (in TTS) on its way out."""

    stage = "tts"
    sample_rate: int = 16000

    def synthesize(self, call: CallInfo, text: str) -> AsyncIterator[bytes]:
        return self._stream(lambda: self._synthesize(call, text), "tts_ttfa", call)

    def reply(self, call: CallInfo) -> SpokenReply:
        """A reply to speak clause by clause (see :class:`SpokenReply`)."""
        return SpokenReply(self, call)

    @abstractmethod
    def _synthesize(self, call: CallInfo, text: str) -> AsyncIterator[bytes]: ...
