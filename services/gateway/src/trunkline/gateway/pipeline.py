"""One turn's work: STT final → context → LLM text, clause by clause, into TTS.

LLM generation and TTS run concurrently (the LLM keeps producing while the first clause is
synthesised). Results go back to the turn machine as events through ``emit``; cancelling the task
cancels the peer streams. Peer deadlines and retries live in the peer ABCs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

from opentelemetry import trace
from opentelemetry.trace import Tracer

from trunkline.gateway.core.clauses import ClauseSplitter, speakable, split_text
from trunkline.gateway.core.clock import Clock
from trunkline.gateway.core.entities import card_number, extract_entities, spoken_number
from trunkline.gateway.core.events import (
    Event,
    Message,
    ReplyAudio,
    StartWork,
    TranscriptReady,
    WorkDone,
)
from trunkline.gateway.core.extractive import best_passage
from trunkline.gateway.core.grounding import Support
from trunkline.gateway.core.replies import (
    Fallback,
    GuardPolicy,
    Plan,
    ReplyPolicy,
    ReplySource,
    Retrieved,
    plan_reply,
    question_of,
)
from trunkline.gateway.core.tool_answers import tool_answer
from trunkline.gateway.core.tools import ToolStatus
from trunkline.gateway.escalations import Escalations
from trunkline.gateway.metrics import GatewayMetrics
from trunkline.gateway.peers.base import (
    ContextSource,
    LanguageModel,
    SpokenReply,
    Synthesizer,
    Transcriber,
)
from trunkline.gateway.peers.types import (
    CallInfo,
    ContextResult,
    LlmRequest,
    TextDelta,
    ToolCallRequested,
    ToolResult,
    ToolRound,
    Usage,
)
from trunkline.gateway.records import GuardRecord, ToolRecord, TurnRecord
from trunkline.gateway.tools.executor import ToolExecutor
from trunkline.redaction import redact_facts
from trunkline.redaction.injection import DisclosureCheck
from trunkline.redaction.pii import Known, redact, sensitive_digits

log = logging.getLogger(__name__)
PCM_BYTES_PER_S = 32000  # 16 kHz PCM16
READ_AHEAD_STT = "read_ahead_stt"  # span name and stage label of a read-ahead's peer calls
READ_AHEAD_CONTEXT = "read_ahead_context"
PRECISELY = "To be precise:"  # leads a passage spoken after part of a held-back reply

Emit = Callable[[Event], None]
Committed = Callable[[], Awaitable[None]]


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
        first_clause_words: int | None = None,
        tools: ToolExecutor | None = None,
        entity_names: tuple[str, ...] = (),
        replies: ReplyPolicy | None = None,
        guard: GuardPolicy | None = None,
        grounding_texts: tuple[str, ...] = (),
        metrics: GatewayMetrics | None = None,
        escalations: Escalations | None = None,
    ) -> None:
        """``grounding_texts``: what the agent may always state (its system prompt, greeting
        and fixed replies); each turn adds its context block and tool results."""
        self.peers = peers
        self.call = call
        self.clock = clock
        self.tracer = tracer
        self.greeting = greeting
        self.min_clause_words = min_clause_words
        self.first_clause_words = first_clause_words
        self.tools = tools
        self.entity_names = entity_names
        self.entities: dict[str, str] = {}  # call state for the context service's live sources
        self.replies = replies or ReplyPolicy()
        self.guard = guard or GuardPolicy()
        self.metrics = metrics
        self.escalations = escalations  # None: this call never escalates
        self._support = Support((greeting, *grounding_texts))
        self._disclosure = DisclosureCheck.of(grounding_texts)  # the system prompt's instructions
        self._last_clause = ""
        self._read_ahead: ContextResult | None = None  # the last read-ahead's context
        self._work_started = 0.0  # when the current turn's work started (clock seconds)
        # the numbers the caller gave in this call, as said (process memory only: the sinks get
        # them redacted); the agent may read them back in any later turn
        self._caller_numbers: dict[str, None] = {}
        # the caller's personal numbers (card, account, phone) in this call: a held-back clause
        # that repeats one as bare digits is recorded, traced and logged without them
        self._caller_pii: Known = {}

    async def run(
        self,
        work: StartWork,
        record: TurnRecord,
        emit: Emit,
        committed: Committed | None = None,
    ) -> None:
        """``committed`` returns once the turn is committed (speculative work); tools with
        side effects wait for it."""
        record.caller_audio_s = len(work.audio) / PCM_BYTES_PER_S
        self._work_started = self.clock.now()
        if work.greeting:
            record.generated_text = self.greeting
            record.reply_source, record.grounded = ReplySource.GREETING, True
            said = split_text(self.greeting, first_clause_words=self.first_clause_words)
            await self._speak(work.turn_id, _iterate(said), record, emit)
            emit(WorkDone(work.turn_id))
            return
        started = self.clock.now()
        heard = await self.peers.stt.transcribe(self.call, work.audio)
        text = heard.text.strip()
        record.stt_confidence = heard.confidence
        record.stage_s["stt"] = self.clock.now() - started
        record.user_text = text
        emit(TranscriptReady(work.turn_id, text))
        if not text:
            emit(WorkDone(work.turn_id))
            return
        self.entities.update(extract_entities(text, self.entity_names))
        self._caller_numbers.update(dict.fromkeys(_said_numbers(text)))
        sensitive_digits(text, self._caller_pii)
        # An outright request for a person escalates at once: the hold message does not wait
        # for the context service (its intent could only confirm what the words say).
        early = self.escalations.before_context(text, record) if self.escalations else None
        # The question the context and the plan read: the words of a turn whose reply the caller
        # spoke over unheard belong to it (the LLM has them in the history already).
        asked = question_of(work.history, text)
        plan = early or await self._resolve_and_plan(asked, record)
        if plan.text:
            record.cached = plan.source is ReplySource.CACHE
            record.generated_text = plan.text
            record.grounded = True  # the agent's own words, a passage, or a checked answer
            clip = self.escalations.clip(plan) if self.escalations is not None else None
            if clip:  # the hold message as rendered before: no TTS on the way to the hold
                record.tts_audio_s += len(clip) / (2 * self.peers.tts.sample_rate)
                emit(ReplyAudio(work.turn_id, 0, plan.text, clip, last=True))
            else:
                first = self.first_clause_words
                clauses = _iterate(split_text(plan.text, self.min_clause_words, first))
                await self._speak(work.turn_id, clauses, record, emit)
        else:
            await self._answer(work, text, record, emit, committed)
        self._read_ahead = None  # it read this turn ahead; the next one gets its own
        emit(WorkDone(work.turn_id))

    async def _answer(
        self,
        work: StartWork,
        text: str,
        record: TurnRecord,
        emit: Emit,
        committed: Committed | None,
    ) -> None:
        """The turn the plan leaves to the model: the tools the caller's words call first (their
        result said in the spec's words when one fits), else the model under the guard."""
        context = record.context
        assert context is not None  # only a turn that resolved its context reaches the LLM
        request = LlmRequest(self.call, text, work.history, context)
        support = self._support.copy() if self.guard.enabled else None
        if support is not None:
            support.add(context.block, *self._caller_numbers)
        record.grounded = support is not None
        heard = await self._heard_round(text, record, committed)
        said = self._tool_answer(heard, record)
        if said:  # the tool's result in the spec's words: no model in the way
            clauses = _iterate(split_text(said, self.min_clause_words, self.first_clause_words))
            await self._speak(work.turn_id, clauses, record, emit)
            return
        generated = self._generate(request, record, committed, support, heard)
        await self._speak(work.turn_id, generated, record, emit, support=support, question=text)

    async def _resolve_and_plan(self, text: str, record: TurnRecord) -> Plan:
        started = self.clock.now()
        context = await self.peers.context.resolve(
            self.call, text, self.entities, prefer_first=self._cached_citations()
        )
        record.stage_s["context"] = self.clock.now() - started
        record.retrieval_confidence = context.confidence
        record.citations = context.citations
        record.context = context
        plan = self._plan(text, record, context)
        if self.escalations is not None:
            plan = self.escalations.check(text, record, plan)
            record.reply_source = plan.source
        return plan

    def _plan(self, text: str, record: TurnRecord, context: ContextResult) -> Plan:
        retrieved = Retrieved(
            block=context.block,
            confidence=context.confidence,
            cached_answer=context.cached_answer,
            intent=context.intent,
            intent_score=context.intent_score,
            live_data=context.uses_live_data,
        )
        started = self.clock.now()
        plan = plan_reply(text, record.stt_confidence, retrieved, self.replies)
        record.stage_s["reply_plan"] = self.clock.now() - started  # intent and reply decision
        record.intent, record.reply_source, record.hang_up = plan.intent, plan.source, plan.hang_up
        span = trace.get_current_span()
        span.set_attribute("turn.intent", str(plan.intent))
        span.set_attribute("turn.reply_source", str(plan.source))
        span.set_attribute("turn.reply_reason", plan.reason)
        return plan

    async def prefetch(self, audio: bytes, history: tuple[Message, ...]) -> None:
        """Read the utterance so far ahead of the turn: STT, its context, and an LLM prefill
        of history + that context block + the turn so far, so the turn's generation finds them
        in the model's cache when the caller stops (the final transcript usually extends the
        partial one and finds the same context).
        Best effort: failures are logged, nothing is spoken or recorded in the call."""
        with self.tracer.start_as_current_span("prefetch") as span:
            try:
                stt = self.peers.stt
                text = (await stt.transcribe(self.call, audio, READ_AHEAD_STT)).text.strip()
                span.set_attribute("prefetch.text", text[:256])
                if not text:
                    return
                context = await self.peers.context.resolve(
                    self.call,
                    text,
                    self.entities,
                    prefer_first=self._cached_citations(),
                    stage=READ_AHEAD_CONTEXT,
                )
                self._read_ahead = context
                if context.cached_answer:
                    return  # a cache hit needs no LLM; the turn finds the same hit
                await self.peers.llm.prefill(self.call, history, context, partial=text)
            except Exception as exc:  # nothing depends on a prefetch
                log.info("prefetch failed (the turn does the work): %r", exc)
                span.set_attribute("prefetch.failed", f"{type(exc).__name__}: {exc}")

    def _cached_citations(self) -> tuple[str, ...]:
        """The items of the last read-ahead's block, which the LLM's prompt cache holds: the
        context service puts them first when this lookup keeps them too."""
        return self._read_ahead.citations if self._read_ahead is not None else ()

    async def _generate(
        self,
        request: LlmRequest,
        record: TurnRecord,
        committed: Committed | None,
        support: Support | None = None,
        heard: ToolRound | None = None,
    ) -> AsyncIterator[str]:
        """The reply's clauses. A round that ends in tool calls runs them through the tool
        executor and generates again with the results, at most the executor's round limit."""
        splitter = ClauseSplitter(self.min_clause_words, first_clause_words=self.first_clause_words)
        started = self.clock.now()
        rounds: list[ToolRound] = []
        if heard is not None:  # the tools the gateway called itself: the model's first round
            rounds.append(heard)
            if support is not None:
                support.add(*(f"{r.arguments_json}\n{r.result_json}" for r in heard.results))
        while True:
            text = ""
            calls: list[ToolCallRequested] = []
            turn_request = replace(request, tool_rounds=tuple(rounds))
            round_started_ns = time.time_ns()
            async for event in self.peers.llm.generate(turn_request):
                match event:
                    case TextDelta(text=delta):
                        if "llm_ttft" not in record.stage_s:
                            record.stage_s["llm_ttft"] = self.clock.now() - started
                        text += delta
                        record.generated_text += delta
                        for clause in splitter.push(delta):
                            first_clause_s = self.clock.now() - started
                            record.stage_s.setdefault("llm_first_clause", first_clause_s)
                            yield clause
                    case ToolCallRequested():
                        calls.append(event)
                    case Usage():
                        self._usage(event, record, round_started_ns)
            if not calls:
                break
            if self.tools is not None and self.tools.needs_approval(calls, self.call):
                for clause in splitter.flush():  # what the model said before the tool call
                    yield clause
                yield self.tools.approval_line  # the caller is told while a person decides
            results = await self._run_tools(calls, len(rounds), record, committed)
            if support is not None:  # what the tools returned may be stated
                support.add(*(f"{r.arguments_json}\n{r.result_json}" for r in results))
                support.add(*(t.result_json for t in record.tool_calls))
            if not results:
                break
            rounds.append(ToolRound(text, results))
        record.stage_s["llm"] = self.clock.now() - started
        for clause in splitter.flush():
            record.stage_s.setdefault("llm_first_clause", self.clock.now() - started)
            yield clause

    async def _heard_round(
        self, text: str, record: TurnRecord, committed: Committed | None
    ) -> ToolRound | None:
        """The tools the spec has the gateway call itself (``call_when_heard``) when this turn's
        words give their arguments — the caller read out an account number: they run before
        the model's first round, and their results are that round, so the answer does not hang
        on a small model choosing to call the tool (it once invented a survey instead)."""
        if self.tools is None:
            return None
        heard = self.tools.book.heard_calls(text, self.call.caller_role)
        if not heard:
            return None
        calls = [
            ToolCallRequested(f"heard_{record.turn_id}_{i}", name, arguments)
            for i, (name, arguments) in enumerate(heard, start=1)
        ]
        trace.get_current_span().add_event("tool.heard", {"tools": [name for name, _ in heard]})
        results = await self._run_tools(calls, 0, record, committed)
        return ToolRound("", results) if results else None

    def _tool_answer(self, heard: ToolRound | None, record: TurnRecord) -> str:
        """The heard tools' results said in the spec's words (the first tool whose answers fit
        its result), "" when none fits: then the model phrases them."""
        if heard is None or self.tools is None:
            return ""
        for result in heard.results:
            policy = self.tools.book.tools.get(result.name)
            said = tool_answer(policy.answers, result.result_json) if policy else None
            if said:
                record.reply_source, record.grounded = ReplySource.TOOL, True
                record.generated_text = said
                trace.get_current_span().set_attribute("turn.reply_source", str(ReplySource.TOOL))
                return said
        return ""

    async def _run_tools(
        self,
        calls: list[ToolCallRequested],
        rounds_done: int,
        record: TurnRecord,
        committed: Committed | None,
    ) -> tuple[ToolResult, ...]:
        """Run one round's calls in order; empty when no further generation round may follow."""
        results: list[ToolResult] = []
        for call in calls:
            call_id = call.call_id or f"call_{record.turn_id}_{len(record.tool_calls) + 1}"
            request = replace(call, call_id=call_id)
            if self.tools is None:
                log.warning(
                    "tool call %s not executed: this gateway has no tool executor", call.name
                )
                tool = ToolRecord(call_id, call.name, call.arguments_json, ToolStatus.UNKNOWN, "")
            else:
                tool = await self.tools.execute(self.call, request, rounds_done, committed)
            record.tool_calls.append(tool)
            if tool.status is ToolStatus.SUCCEEDED:
                self._remember_arguments(call.arguments_json)
            record.stage_s["tools"] = record.stage_s.get("tools", 0.0) + tool.duration_s
            results.append(ToolResult(call_id, call.name, call.arguments_json, tool.result_json))
        if self.tools is None or not self.tools.may_continue(rounds_done):
            return ()
        return tuple(results)

    def _remember_arguments(self, arguments_json: str) -> None:
        """A tool that ran with an entity as argument (``account_id``) sets it for the call."""
        arguments = json.loads(arguments_json or "{}")  # valid: the executor checked it
        for name in self.entity_names:
            value = arguments.get(name)
            if isinstance(value, str | int) and str(value):
                self.entities[name] = str(value)

    def _usage(self, usage: Usage, record: TurnRecord, round_started_ns: int) -> None:
        record.prompt_tokens += usage.prompt_tokens
        record.completion_tokens += usage.completion_tokens
        record.cached_prompt_tokens += usage.cached_prompt_tokens
        if usage.prompt_compile_s is not None:
            record.stage_s["prompt_compile"] = (
                record.stage_s.get("prompt_compile", 0.0) + usage.prompt_compile_s
            )
            # The LLM service reports a duration, spent first thing after the request.
            end = round_started_ns + int(usage.prompt_compile_s * 1e9)
            span = self.tracer.start_span("prompt_compile", start_time=round_started_ns)
            span.end(end_time=end)

    async def _speak(
        self,
        turn_id: int,
        clauses: AsyncIterator[str],
        record: TurnRecord,
        emit: Emit,
        *,
        support: Support | None = None,
        question: str = "",
    ) -> None:
        """Synthesise clauses as they come; the clause source runs ahead in its own task.
        With ``support``, each clause passes the grounding guard first: the first one that
        fails stops the source, and the agent spec's fallback is spoken in its place."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        async def produce() -> None:
            try:
                async for clause in clauses:
                    queue.put_nowait(clause)
            finally:
                queue.put_nowait(None)

        producer = asyncio.create_task(produce())
        reply = self.peers.tts.reply(self.call)  # one TTS stream for the reply's clauses
        try:
            index = 0
            while (generated := await queue.get()) is not None:
                clause = speakable(generated)
                if not clause:
                    continue
                if not self._private(clause, record, index) or (
                    support is not None and not self._guard(clause, support, record, index)
                ):
                    producer.cancel()
                    await asyncio.gather(producer, return_exceptions=True)
                    fallback = self._fallback(question, record, spoken=index > 0)
                    for text in split_text(fallback, self.min_clause_words) if fallback else ():
                        index = await self._synthesize(
                            turn_id, index, text, record, emit, reply=reply
                        )
                    return
                index = await self._synthesize(turn_id, index, clause, record, emit, reply=reply)
            await producer  # re-raise a producer failure
            if index == 0 and question:  # the model said nothing speakable: never silence
                record.grounded = False
                log.info(
                    "call %s turn %d: the model said nothing speakable; the fallback instead",
                    self.call.call_id,
                    record.turn_id,
                )
                fallback = self._fallback(question, record, spoken=False)
                for text in split_text(fallback, self.min_clause_words) if fallback else ():
                    index = await self._synthesize(turn_id, index, text, record, emit, reply=reply)
        finally:
            reply.close()
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)

    async def _synthesize(
        self,
        turn_id: int,
        index: int,
        clause: str,
        record: TurnRecord,
        emit: Emit,
        *,
        reply: SpokenReply,
    ) -> int:
        """One clause into TTS and out as reply audio; the next clause's index. Cut off
        (barge-in), the clause's audio stream is closed at once: TTS drops the rest."""
        ready = self.clock.now()
        audio = reply.say(clause)
        try:
            async for pcm in audio:
                if index == 0 and "tts_ttfa" not in record.stage_s:
                    record.stage_s["tts_ttfa"] = self.clock.now() - ready
                    # the turn's work start -> its first reply audio (a speculative turn's audio
                    # is late when this exceeds the rest of the endpoint's silence)
                    record.stage_s["reply_ready"] = self.clock.now() - self._work_started
                record.tts_audio_s += len(pcm) / (2 * self.peers.tts.sample_rate)
                emit(ReplyAudio(turn_id, index, clause, pcm, last=False))
        finally:
            aclose = getattr(audio, "aclose", None)
            if aclose is not None:
                await aclose()
        emit(ReplyAudio(turn_id, index, clause, b"", last=True))
        return index + 1

    def _private(self, clause: str, record: TurnRecord, index: int) -> bool:
        """The output check (issue 13): a clause that discloses the system prompt's
        instructions (with the clause before it) is never spoken; the guard's fallback is."""
        before = self._last_clause if index > 0 else ""
        why = self._disclosure.disclosure(f"{before} {clause}")
        if not why:
            self._last_clause = clause
            return True
        record.grounded = False
        record.guard_interventions.append(GuardRecord(clause, ("system_prompt",), "fallback"))
        trace.get_current_span().add_event("guard.disclosure", {"reason": why, "index": index})
        log.warning("call %s turn %d: clause held back: %s", self.call.call_id, record.turn_id, why)
        return False

    def _guard(self, clause: str, support: Support, record: TurnRecord, index: int) -> bool:
        """Whether the guard lets the clause through (~1 ms); a held-back one is traced and
        counted."""
        started = self.clock.now()
        verdict = support.check(clause)
        record.stage_s["guard"] = record.stage_s.get("guard", 0.0) + self.clock.now() - started
        if verdict.passed:
            return True
        action = "fallback"
        record.grounded = False
        # a card's digits stay out, even repeated bare ("4539, 14880, 64667.")
        unsupported = redact_facts(clause, verdict.unsupported, self._caller_pii)
        clause = redact(clause, self._caller_pii)
        record.guard_interventions.append(GuardRecord(clause, unsupported, action))
        span = trace.get_current_span()
        span.add_event(
            "guard.held_back",
            {"clause": clause[:256], "unsupported": list(unsupported), "index": index},
        )
        span.set_attribute("guard.interventions", len(record.guard_interventions))
        if self.metrics is not None:
            for fact in verdict.unsupported:
                kind = fact.split(":", 1)[0]
                self.metrics.guard_interventions.add(1, {"fact": kind, "action": action})
        log.info(
            "call %s turn %d: clause held back, unsupported %s: %r",
            self.call.call_id,
            record.turn_id,
            ", ".join(unsupported),
            clause,
        )
        return False

    def _fallback(self, question: str, record: TurnRecord, *, spoken: bool) -> str:
        """What is said instead of a clause the guard held back: the best passage of the turn's
        knowledge when the spec wants it and one matches, else the safe line. After words of
        the reply were heard, the passage is introduced as the precise answer."""
        record.reply_source = ReplySource.FALLBACK
        context = record.context
        if self.guard.fallback is Fallback.BEST_PASSAGE and context is not None:
            passage = best_passage(question, context.block, self.replies.max_answer_words)
            if passage.text:
                return f"{PRECISELY} {passage.text}" if spoken else passage.text
        return self.guard.safe_line


def _said_numbers(text: str) -> list[str]:
    """The account, order or phone number the caller gave (5+ digits), as its groups and
    joined: the agent may read it back ("account 441-729"), in this turn or a later one.
    Nothing else the caller said is support, and never a payment card number: the agent does
    not read a card back (a clause that does is held back)."""
    number = spoken_number(text)
    if number is None or card_number(text, number):
        return []
    return [number, " ".join(re.findall(r"\d+", text))]


async def _iterate(items: list[str]) -> AsyncIterator[str]:
    for item in items:
        yield item
