"""One turn's work: STT final → context → LLM text, clause by clause, into TTS.

LLM generation and TTS run concurrently (the LLM keeps producing while the first clause is
synthesised). Results go back to the turn machine as events through ``emit``; cancelling the task
cancels the peer streams. Peer deadlines and retries live in the peer ABCs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from opentelemetry.trace import Tracer

from trunkline.gateway.core.clauses import ClauseSplitter, split_text
from trunkline.gateway.core.clock import Clock
from trunkline.gateway.core.events import Event, ReplyAudio, StartWork, TranscriptReady, WorkDone
from trunkline.gateway.peers.base import ContextSource, LanguageModel, Synthesizer, Transcriber
from trunkline.gateway.peers.types import (
    CallInfo,
    LlmRequest,
    TextDelta,
    ToolCallRequested,
    Usage,
)
from trunkline.gateway.records import TurnRecord

log = logging.getLogger(__name__)
PCM_BYTES_PER_S = 32000  # 16 kHz PCM16

Emit = Callable[[Event], None]


@dataclass(frozen=True, slots=True)
class Peers:
    stt: Transcriber
    context: ContextSource
    llm: LanguageModel
    tts: Synthesizer


class TurnPipeline:
    def __init__(
        self,
        peers: Peers,
        call: CallInfo,
        *,
        clock: Clock,
        tracer: Tracer,
        greeting: str,
        min_clause_words: int = 3,
    ) -> None:
        self.peers = peers
        self.call = call
        self.clock = clock
        self.tracer = tracer
        self.greeting = greeting
        self.min_clause_words = min_clause_words

    async def run(self, work: StartWork, record: TurnRecord, emit: Emit) -> None:
        record.caller_audio_s = len(work.audio) / PCM_BYTES_PER_S
        if work.greeting:
            record.generated_text = self.greeting
            await self._speak(work.turn_id, _iterate(split_text(self.greeting)), record, emit)
            emit(WorkDone(work.turn_id))
            return
        started = self.clock.now()
        text = (await self.peers.stt.transcribe(self.call, work.audio)).strip()
        record.stage_s["stt"] = self.clock.now() - started
        record.user_text = text
        emit(TranscriptReady(work.turn_id, text))
        if not text:
            emit(WorkDone(work.turn_id))
            return
        started = self.clock.now()
        context = await self.peers.context.resolve(self.call, text)
        record.stage_s["context"] = self.clock.now() - started
        record.retrieval_confidence = context.confidence
        record.citations = context.citations
        if context.cached_answer:
            record.cached = True
            record.generated_text = context.cached_answer
            clauses = _iterate(split_text(context.cached_answer, self.min_clause_words))
            await self._speak(work.turn_id, clauses, record, emit)
        else:
            request = LlmRequest(self.call, text, work.history, context)
            await self._speak(work.turn_id, self._generate(request, record), record, emit)
        emit(WorkDone(work.turn_id))

    async def _generate(self, request: LlmRequest, record: TurnRecord) -> AsyncIterator[str]:
        splitter = ClauseSplitter(self.min_clause_words)
        started = self.clock.now()
        wall_started = time.time_ns()
        first = True
        async for event in self.peers.llm.generate(request):
            match event:
                case TextDelta(text=delta):
                    if first:
                        record.stage_s["llm_ttft"] = self.clock.now() - started
                        first = False
                    record.generated_text += delta
                    for clause in splitter.push(delta):
                        yield clause
                case ToolCallRequested(name=name, arguments_json=args):
                    record.tool_calls.append(name)
                    with self.tracer.start_as_current_span("tool") as span:
                        span.set_attribute("tool.name", name)
                        span.set_attribute("tool.arguments", args[:512])
                        span.set_attribute("tool.executed", False)
                    log.warning("tool call %s not executed: the gateway has no tool executor", name)
                case Usage():
                    record.prompt_tokens += event.prompt_tokens
                    record.completion_tokens += event.completion_tokens
                    if event.prompt_compile_s is not None:
                        record.stage_s["prompt_compile"] = event.prompt_compile_s
                        end = wall_started + int(event.prompt_compile_s * 1e9)
                        span = self.tracer.start_span("prompt_compile", start_time=wall_started)
                        span.end(end_time=end)
        record.stage_s["llm"] = self.clock.now() - started
        for clause in splitter.flush():
            yield clause

    async def _speak(
        self, turn_id: int, clauses: AsyncIterator[str], record: TurnRecord, emit: Emit
    ) -> None:
        """Synthesise clauses as they come; the clause source runs ahead in its own task."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        async def produce() -> None:
            try:
                async for clause in clauses:
                    queue.put_nowait(clause)
            finally:
                queue.put_nowait(None)

        producer = asyncio.create_task(produce())
        try:
            index = 0
            while (clause := await queue.get()) is not None:
                ready = self.clock.now()
                async for pcm in self.peers.tts.synthesize(self.call, clause):
                    if index == 0 and "tts_ttfa" not in record.stage_s:
                        record.stage_s["tts_ttfa"] = self.clock.now() - ready
                    record.tts_audio_s += len(pcm) / PCM_BYTES_PER_S
                    emit(ReplyAudio(turn_id, index, clause, pcm, last=False))
                emit(ReplyAudio(turn_id, index, clause, b"", last=True))
                index += 1
            await producer  # re-raise a producer failure
        finally:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)


async def _iterate(items: list[str]) -> AsyncIterator[str]:
    for item in items:
        yield item
