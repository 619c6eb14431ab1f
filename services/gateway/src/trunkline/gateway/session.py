"""One live call: transport events in, the turn machine deciding, peers working, audio out.

The session is the thin async shell around :class:`TurnMachine`: it scores each frame with the
VAD, feeds events to the machine and carries out the actions (start/cancel turn work, send audio,
marks and clears, telemetry, call facts to the sink). Nothing a peer or a transport does can
crash it: failures are logged and the call goes on until the caller hangs up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from trunkline.agents.dtmf import KeyAction, MenuItem
from trunkline.audio import frame_bytes, pcm16_dbfs
from trunkline.gateway.core.clock import Clock
from trunkline.gateway.core.escalation import EscalationDecision, Reason
from trunkline.gateway.core.events import (
    Action,
    CancelWork,
    CheckEndOfTurn,
    ClearPlayback,
    EndOfTurnJudged,
    EndOfTurnVerdict,
    EndpointHeld,
    Event,
    FillerStarted,
    FirstAudio,
    HandOff,
    InboundFrame,
    MarkPlayed,
    PlayoutTick,
    Prefetch,
    ReplyAudio,
    SendAudio,
    SendMark,
    StartWork,
    StateChanged,
    TurnCommitted,
    TurnDropped,
    TurnFinished,
    WorkDone,
)
from trunkline.gateway.core.keypad import NO_PERSON_LINE, KeyDecision
from trunkline.gateway.core.replies import GuardPolicy, ReplyPolicy
from trunkline.gateway.core.turns import TurnConfig, TurnMachine
from trunkline.gateway.end_of_turn import EndOfTurnDetector
from trunkline.gateway.escalations import HumanSide
from trunkline.gateway.fillers import FillerCache, tone
from trunkline.gateway.handoff import HandoffResult, OperatorLeg, Outcome
from trunkline.gateway.keypad import fixed_lines, keypad_menu, say_line
from trunkline.gateway.metrics import GatewayMetrics, version_labels
from trunkline.gateway.peers.hitl import Line
from trunkline.gateway.peers.types import CallInfo, Prefilled, StoredAnswer
from trunkline.gateway.pipeline import Peers, TurnPipeline
from trunkline.gateway.records import CallSink, CallSummary, TurnRecord
from trunkline.gateway.session_handoffs import HandoffDone, OperatorTook, SessionHandoffs
from trunkline.gateway.tools import ToolExecutor
from trunkline.gateway.transports.base import AudioIn, Dtmf, Hangup, MarkEcho, Played, Transport
from trunkline.gateway.vad import SpeechDetector

log = logging.getLogger(__name__)
FAILED_CLAUSE = 1_000_000  # clause index of the apology played when a turn's work failed


@dataclass(frozen=True, slots=True)
class SessionConfig:
    turn: TurnConfig = field(default_factory=TurnConfig)
    greeting: str = "Hello! How can I help you today?"
    filler_text: str = "One moment, please."
    apology_text: str = ""  # played when a turn's work failed; empty: the filler
    min_clause_words: int = 3
    first_clause_words: int | None = 3  # the reply's first clause is cut after so many words
    sink_drain_s: float = 10.0  # call facts still queued when the call ends: nothing is lost
    llm_prefill: bool = True  # after each turn, the LLM evaluates the known prompt ahead
    replies: ReplyPolicy = field(default_factory=ReplyPolicy)
    guard: GuardPolicy = field(default_factory=GuardPolicy)
    grounding_texts: tuple[str, ...] = ()  # what the agent may always state (its prompt)
    keypad: dict[str, MenuItem] = field(default_factory=dict)  # DTMF key -> action (spec dtmf)
    keypad_no_person: str = NO_PERSON_LINE  # said for a ``person`` key with no human-in-the-loop


@dataclass(frozen=True, slots=True)
class _WorkFailed:
    turn_id: int
    error: BaseException


@dataclass(slots=True)
class _Work:
    task: asyncio.Task[None]
    span: Span
    record: TurnRecord
    endpointing: Span | None
    committed: asyncio.Event


class CallSession:
    def __init__(
        self,
        call: CallInfo,
        transport: Transport,
        peers: Peers,
        detector: SpeechDetector,
        sink: CallSink,
        *,
        clock: Clock,
        tracer: Tracer,
        metrics: GatewayMetrics | None = None,
        fillers: FillerCache | None = None,
        config: SessionConfig | None = None,
        tools: ToolExecutor | None = None,
        entity_names: tuple[str, ...] = (),
        end_of_turn: EndOfTurnDetector | None = None,
        human: HumanSide | None = None,
    ) -> None:
        """``human``: the agent's human-in-the-loop setup (None: the call never escalates)."""
        self.call = call
        self.end_of_turn = end_of_turn  # None: no verdicts, the silence endpoint decides
        self._checks: set[asyncio.Task[None]] = set()
        self.transport = transport
        self.peers = peers
        self.detector = detector
        self.sink = sink
        self.clock = clock
        self.tracer = tracer
        self.metrics = metrics
        self.config = config or SessionConfig()
        self.fillers = fillers or FillerCache(clock)
        rate = transport.out_rate
        if peers.tts.sample_rate != rate:  # reply audio is resampled once, in TTS
            raise ValueError(
                f"TTS renders at {peers.tts.sample_rate} Hz but transport {transport.name!r} "
                f"plays {rate} Hz: give the synthesizer the transport's out_rate"
            )
        self.machine = TurnMachine(
            self.config.turn, filler_pcm=tone(rate=rate), out_frame_bytes=frame_bytes(rate)
        )
        self.pipeline = TurnPipeline(
            peers,
            call,
            clock=clock,
            tracer=tracer,
            greeting=self.config.greeting,
            min_clause_words=self.config.min_clause_words,
            first_clause_words=self.config.first_clause_words,
            tools=tools,
            entity_names=entity_names,
            replies=self.config.replies,
            guard=self.config.guard,
            grounding_texts=self.config.grounding_texts,
            metrics=metrics,
        )
        self.handoffs: SessionHandoffs | None = None
        if human is not None:
            self.handoffs = SessionHandoffs(
                call,
                human,
                clock=clock,
                fillers=self.fillers,
                transcriber=peers.stt,
                synthesizer=peers.tts,
                metrics=metrics,
                out_rate=transport.out_rate,
                lines=self._handoff_line,
            )
            self.pipeline.escalations = self.handoffs.escalations
        self.keypad = keypad_menu(
            self.config.keypad,
            person_available=self.handoffs is not None,
            no_person_line=self.config.keypad_no_person,
        )
        self._keypad_lines = fixed_lines(self.config.keypad, self.config.keypad_no_person)
        self.turns: list[TurnRecord] = []
        self._inbox: asyncio.Queue[
            Event
            | AudioIn
            | MarkEcho
            | Played
            | Hangup
            | Dtmf
            | _WorkFailed
            | HandoffDone
            | OperatorTook
        ] = asyncio.Queue()
        self._work: dict[int, _Work] = {}
        self._sink_queue: asyncio.Queue[Callable[[], Awaitable[None]] | None] = asyncio.Queue()
        self._call_span: Span | None = None
        self._prefill: asyncio.Task[Prefilled | None] | None = None
        self._prefetch: asyncio.Task[None] | None = None
        self._frame_received_at = 0.0
        self.keypresses: list[str] = []  # DTMF keys the caller pressed, in order
        self._hung_up = False
        self._apology_pcm = b""
        self.started_at = datetime.now(UTC)
        # Per-version latency (a rollout compares a candidate's p95 with stable's).
        self._version_labels = version_labels(call.agent, call.agent_version)

    # ---- public ---------------------------------------------------------------------------

    def hand_off(self) -> None:
        """A human takes over: stop the agent (thread-safe within the loop)."""
        self._inbox.put_nowait(HandOff())

    async def attach_operator(self, ticket_id: str, leg: OperatorLeg) -> None:
        """An operator's audio leg joins the call's handoff for ``ticket_id`` (LookupError:
        this call has no such handoff; the leg is closed)."""
        if self.handoffs is None:
            await leg.close()
            raise LookupError(f"call {self.call.call_id} has no human-in-the-loop")
        await self.handoffs.attach(ticket_id, leg)

    def hang_up(self, reason: str) -> None:
        """End the call from outside (admin): it ends as if the caller had hung up."""
        self._inbox.put_nowait(Hangup(f"admin: {reason}"))

    async def run(self) -> CallSummary:
        started = self.clock.now()
        span = self.tracer.start_span(
            "call", context=otel_context.Context(), attributes=_call_attributes(self.call)
        )
        self._call_span = span
        reason = "caller hung up"
        if self.metrics is not None:
            self.metrics.calls.add(1)
        with trace.use_span(span, end_on_exit=False):  # events carry the call's trace
            sink_worker = asyncio.create_task(self._drain_sink())
            reader = asyncio.create_task(self._read_transport())
            filler = asyncio.create_task(self._render_filler())
        self._publish(lambda: self.sink.call_started(self.call, self.transport.name))
        try:
            with trace.use_span(span, end_on_exit=False):
                await self._execute(self.machine.greet(self.clock.now()))
                reason = await self._loop()
        except Exception as exc:
            reason = f"session error: {type(exc).__name__}: {exc}"
            log.exception("call %s: session failed", self.call.call_id)
            span.set_status(Status(StatusCode.ERROR, reason))
        finally:
            await self._shutdown(reader, filler)
            summary = CallSummary(self.call, reason, len(self.turns), self.clock.now() - started)
            self._publish(lambda: self.sink.call_ended(summary))
            self._sink_queue.put_nowait(None)
            try:
                await asyncio.wait_for(sink_worker, self.config.sink_drain_s)
            except TimeoutError:
                log.warning("call %s: sink did not drain in time", self.call.call_id)
            if self.metrics is not None:
                self.metrics.calls.add(-1)
            span.set_attribute("call.turns", len(self.turns))
            span.set_attribute("call.end_reason", reason)
            span.end()
        return summary

    # ---- loop -----------------------------------------------------------------------------

    async def _loop(self) -> str:
        while True:
            item = await self._inbox.get()
            now = self.clock.now()
            actions: list[Action]
            if self.handoffs is not None and await self._handed_off(item):
                continue
            match item:
                case AudioIn(pcm=pcm, received_at=received_at):
                    self._frame_received_at = received_at
                    try:
                        frame = InboundFrame(pcm, self.detector.probability(pcm), pcm16_dbfs(pcm))
                        actions = self.machine.handle(frame, now)
                    except ValueError as exc:
                        log.warning("call %s: frame dropped: %s", self.call.call_id, exc)
                        continue
                case MarkEcho(name=name):
                    actions = self.machine.handle(MarkPlayed(name), now)
                case Played(frames=frames):
                    actions = self.machine.handle(PlayoutTick(frames), now)
                case Hangup(reason=reason):
                    return reason
                case Dtmf(digit=digit):
                    key = self._keypress(digit)
                    if key is not None and key.action is KeyAction.HANG_UP:
                        return f"the caller pressed {digit} to hang up"
                    actions = self._key_actions(key, now)
                case _WorkFailed(turn_id=turn_id, error=error):
                    actions = self._work_failed(turn_id, error, now)
                case HandoffDone(result=result):
                    if result.outcome is Outcome.ENDED:
                        return "handed off: the operator ended the call"
                    actions = self._taken_back(result)
                case OperatorTook(ticket_id=ticket_id):
                    actions = self._operator_took(ticket_id, now)
                case _:
                    actions = self.machine.handle(item, now)
            if not await self._execute(actions):
                return "transport closed"

    def _keypress(self, digit: str) -> KeyDecision | None:
        """A DTMF key from any transport (Twilio, Plivo, LiveKit SIP): kept, traced, logged,
        and what the agent's keypad menu makes of it (nothing while a person has the call)."""
        self.keypresses.append(digit)
        handed_off = self.handoffs is not None and self.handoffs.active
        key = None if handed_off else self.keypad.decide(digit, self.machine.last_reply)
        action = "" if key is None else key.action.value
        if self._call_span is not None:
            self._call_span.add_event("dtmf", {"digit": digit, "action": action})
        log.info("call %s: the caller pressed %r (%s)", self.call.call_id, digit, action or "-")
        return key

    def _key_actions(self, key: KeyDecision | None, now: float) -> list[Action]:
        """Speak the key's line (cutting off what plays) or hand the call to a person."""
        if key is None:
            return []
        if key.action is not KeyAction.PERSON:
            return self.machine.interject(key.line, now)
        assert self.handoffs is not None  # the menu offers a person only with one
        actions = self.machine.handle(HandOff(), now)
        self.handoffs.start(
            self.turns,
            EscalationDecision(True, Reason.CALLER_REQUEST, detail=f"{key.detail} for a person"),
            dict(self.pipeline.entities),
            announce=True,  # the hold message, as for an outright request
            done=self._inbox.put_nowait,
        )
        return actions

    async def _execute(self, actions: list[Action]) -> bool:
        """Carry out the machine's actions; False when the transport is gone."""
        try:
            for action in actions:
                await self._do(action)
        except (ConnectionError, RuntimeError) as exc:
            log.info("call %s: transport closed while sending: %s", self.call.call_id, exc)
            return False
        return True

    async def _do(self, action: Action) -> None:
        match action:
            case SendAudio(pcm=pcm):
                await self.transport.send_audio(pcm)
            case SendMark(name=name):
                await self.transport.send_mark(name)
            case ClearPlayback(turn_id=turn_id):
                await self.transport.clear()
                stop_s = self.clock.now() - self._frame_received_at
                work = self._work.get(turn_id)
                if work is not None:
                    work.span.add_event("barge-in", {"stop_ms": round(stop_s * 1000, 1)})
                if self.metrics is not None:
                    self.metrics.barge_in.record(stop_s)
            case StartWork():
                self._start(action)
            case Prefetch():
                self._start_prefetch(action)
            case CheckEndOfTurn():
                self._check_end_of_turn(action)
            case EndOfTurnJudged():
                self._end_of_turn_judged(action)
            case EndpointHeld():
                self._endpoint_held(action)
            case CancelWork(turn_id=turn_id, reason=reason):
                self._cancel(turn_id, reason)
            case TurnCommitted():
                self._committed(action)
            case FirstAudio(turn_id=turn_id, voice_to_voice_s=v2v):
                work = self._work.get(turn_id)
                if work is not None and v2v is not None:
                    work.record.voice_to_voice_s = v2v
                    work.span.set_attribute("turn.voice_to_voice_ms", round(v2v * 1000, 1))
                if self.metrics is not None and v2v is not None:
                    self.metrics.voice_to_voice.record(v2v, self._version_labels)
            case FillerStarted(turn_id=turn_id, waited_s=waited):
                log.info("call %s turn %d: filler after %.2fs", self.call.call_id, turn_id, waited)
                work = self._work.get(turn_id)
                if work is not None:
                    work.span.add_event("filler", {"waited_ms": round(waited * 1000, 1)})
                if self.metrics is not None:
                    self.metrics.fillers.add(1)
            case TurnFinished():
                self._finished(action)
            case TurnDropped(turn_id=turn_id, reason=reason):
                self._dropped(turn_id, reason)
            case StateChanged(new=state):
                history = list(self.machine.history)
                self._publish(lambda: self.sink.state_changed(self.call, state, history))

    # ---- turn work ------------------------------------------------------------------------

    def _start(self, work: StartWork) -> None:
        if self._prefetch is not None:
            # The turn's own STT and context run now: a read-ahead still in flight would only
            # compete for the cores (what its prefill evaluated stays in the LLM's cache).
            self._prefetch.cancel()
        parent = trace.set_span_in_context(self._call_span) if self._call_span else None
        span = self.tracer.start_span(
            "turn",
            context=parent,
            attributes={
                "turn.id": work.turn_id,
                "turn.speculative": work.speculative,
                "turn.greeting": work.greeting,
                "agent.version": self.call.agent_version,
            },
        )
        endpointing = None
        if not work.greeting and not work.line:
            endpointing = self.tracer.start_span("endpointing", trace.set_span_in_context(span))
        record = TurnRecord(self.call, work.turn_id, greeting=work.greeting)
        committed = asyncio.Event()
        if not work.speculative:
            committed.set()
        with trace.use_span(span, end_on_exit=False):
            task = asyncio.create_task(self._run_work(work, record, committed))
        self._work[work.turn_id] = _Work(task, span, record, endpointing, committed)

    async def _run_work(
        self, work: StartWork, record: TurnRecord, committed: asyncio.Event
    ) -> None:
        async def wait_committed() -> None:
            await committed.wait()

        try:
            if work.line:  # a keypad menu's line: TTS only
                await say_line(
                    work, record, self._inbox.put_nowait, call=self.call, tts=self.peers.tts,
                    fillers=self.fillers, cached=self._keypad_lines,
                )  # fmt: skip
            else:
                await self.pipeline.run(work, record, self._inbox.put_nowait, wait_committed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._inbox.put_nowait(_WorkFailed(work.turn_id, exc))

    def _work_failed(self, turn_id: int, error: BaseException, now: float) -> list[Action]:
        log.error("call %s turn %d failed: %r", self.call.call_id, turn_id, error)
        work = self._work.get(turn_id)
        if work is not None:
            work.span.record_exception(error)
            work.span.set_status(Status(StatusCode.ERROR, str(error)))
        pcm = self._apology_pcm or self.machine.filler_pcm
        apology = ReplyAudio(turn_id, FAILED_CLAUSE, "", pcm, last=True)
        return self.machine.handle(apology, now) + self.machine.handle(WorkDone(turn_id), now)

    def _cancel(self, turn_id: int, reason: str) -> None:
        work = self._work.get(turn_id)
        if work is None:
            return
        work.task.cancel()
        work.span.set_attribute("turn.cancelled", reason)
        if work.endpointing is not None:
            work.endpointing.end()
            work.endpointing = None

    def _dropped(self, turn_id: int, reason: str) -> None:
        work = self._work.pop(turn_id, None)
        if work is None:
            return
        work.task.cancel()
        if work.endpointing is not None:
            work.endpointing.end()
        work.span.set_attribute("turn.dropped", reason)
        work.span.end()
        if self.metrics is not None:
            self.metrics.turns_dropped.add(1, {"reason": reason, **self._version_labels})

    def _finished(self, done: TurnFinished) -> None:
        work = self._work.pop(done.turn_id, None)
        if work is None:
            return
        record = work.record
        record.user_text = done.user_text or record.user_text
        record.agent_text = done.agent_text
        record.interrupted = done.interrupted
        record.fillers = done.fillers
        record.voice_to_voice_s = done.voice_to_voice_s
        self.turns.append(record)
        work.span.set_attribute("turn.interrupted", done.interrupted)
        work.span.set_attribute("turn.user_text", done.user_text[:256])
        work.span.set_attribute("turn.agent_text", done.agent_text[:256])
        work.span.end()
        if self.metrics is not None:  # the stages the peers do not time themselves
            for stage in ("prompt_compile", "llm_first_clause"):
                if stage in record.stage_s:
                    self.metrics.observe_stage(stage, record.stage_s[stage], self._version_labels)
            if record.intent:  # a caller's turn: by the source that made the reply in the end
                kind = {"source": str(record.reply_source), "intent": str(record.intent)}
                self.metrics.replies.add(1, self._version_labels | kind)
        self._publish(lambda: self.sink.turn_completed(record))
        self._publish(lambda: self._store_answer(record))
        if self._maybe_escalate(record):
            return
        if record.hang_up and not done.interrupted:  # the goodbye has played: hang up
            self._inbox.put_nowait(Hangup("agent hung up after its goodbye"))
            return
        self._prefill_next()

    def _committed(self, done: TurnCommitted) -> None:
        endpointing_s = done.committed_at - done.last_voice_at
        work = self._work.get(done.turn_id)
        if work is not None:
            work.committed.set()
            work.record.stage_s["endpointing"] = endpointing_s
            if work.endpointing is not None:
                work.endpointing.end()
                work.endpointing = None
            work.span.set_attribute("turn.committed", True)
            work.span.set_attribute("turn.ended_by", done.by)
        if self.metrics is not None:
            self.metrics.observe_stage("endpointing", endpointing_s, self._version_labels)
            self.metrics.turn_ends.add(1, {"by": done.by})

    def _check_end_of_turn(self, check: CheckEndOfTurn) -> None:
        """Score the pause off the event loop; the verdict comes back through the inbox. A newer
        pause makes older checks stale: they are cancelled (one still queued for the model's
        worker never runs, so the shared worker is not kept busy with dead checks)."""
        detector = self.end_of_turn
        if detector is None:
            return
        for stale in self._checks:
            stale.cancel()

        async def judge() -> None:
            try:
                score = await detector.score(check.audio)
            except Exception as exc:  # the silence endpoint decides this pause
                log.warning("call %s: end-of-turn check failed: %r", self.call.call_id, exc)
                return
            verdict = EndOfTurnVerdict(check.check_id, score.probability, score.inference_s)
            self._inbox.put_nowait(verdict)

        task = asyncio.create_task(judge())
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    def _endpoint_held(self, held: EndpointHeld) -> None:
        work = self._work.get(held.turn_id)
        if work is not None:
            attributes = {"digits": held.digits, "endpoint_ms": held.endpoint_ms}
            work.span.add_event("endpoint_held", attributes)
            work.span.set_attribute("turn.endpoint_held_ms", held.endpoint_ms)

    def _end_of_turn_judged(self, judged: EndOfTurnJudged) -> None:
        attributes = {
            "end_of_turn.probability": round(judged.probability, 4),
            "end_of_turn.inference_ms": round(judged.inference_s * 1000, 1),
            "end_of_turn.outcome": judged.outcome,
        }
        work = self._work.get(judged.turn_id) if judged.turn_id is not None else None
        span = work.span if work is not None else self._call_span
        if span is not None:
            span.add_event("end_of_turn", attributes)
        if self.metrics is not None:
            self.metrics.end_of_turn_verdicts.add(1, {"outcome": judged.outcome})
            self.metrics.end_of_turn_inference.record(judged.inference_s)

    def _start_prefetch(self, prefetch: Prefetch) -> None:
        """Read the utterance so far ahead; one at a time (a newer one waits for the next
        request rather than competing for the same cores)."""
        if self._prefetch is None or self._prefetch.done():
            work = self.pipeline.prefetch(prefetch.audio, prefetch.history)
            self._prefetch = asyncio.create_task(work)

    def _prefill_next(self) -> None:
        """The history just changed: the LLM evaluates it (with the system prompt and tools)
        while the caller speaks, so the next turn's generation starts at its context block."""
        if not self.config.llm_prefill:
            return
        if self._prefill is not None:
            self._prefill.cancel()
        history = tuple(self.machine.history)
        self._prefill = asyncio.create_task(self.peers.llm.prefill(self.call, history))

    # ---- helpers --------------------------------------------------------------------------

    async def _read_transport(self) -> None:
        try:
            if not await self.transport.deliver(self._inbox.put_nowait):
                self._inbox.put_nowait(Hangup("stream ended"))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("call %s: transport failed: %r", self.call.call_id, exc)
            self._inbox.put_nowait(Hangup(f"transport error: {exc}"))

    async def _render_filler(self) -> None:
        pcm = await self.fillers.get(self.peers.tts, self.call, self.config.filler_text)
        self.machine.filler_pcm = pcm
        if self.config.apology_text:
            text = self.config.apology_text
            self._apology_pcm = await self.fillers.get(self.peers.tts, self.call, text)

    # ---- human in the loop ----------------------------------------------------------------

    def _maybe_escalate(self, record: TurnRecord) -> bool:
        """A finished turn that escalates hands the call to a person (the turn itself spoke
        the hold message, unless its tools' failures decided it afterwards)."""
        if self.handoffs is None:
            return False
        decision = self.handoffs.decision_after(record)
        if decision is None:
            return False
        self._inbox.put_nowait(HandOff())
        announce = record.escalation is None  # a tool-failure escalation: not yet said
        entities = dict(self.pipeline.entities)
        self.handoffs.start(
            self.turns, decision, entities, announce=announce, done=self._inbox.put_nowait
        )
        return True

    async def _handed_off(self, item: object) -> bool:
        """While a person has the call: the caller's frames and the outbound clock go to the
        handoff (the turn machine is quiet). True when the item was taken."""
        assert self.handoffs is not None
        if not self.handoffs.active:
            return False
        match item:
            case AudioIn(pcm=pcm):
                self.handoffs.caller_frame(pcm)
                return True
            case Played(frames=frames):
                for pcm in self.handoffs.play(frames):
                    await self.transport.send_audio(pcm)
                return True
            case Hangup():
                self.handoffs.caller_hung_up()
        return False

    def _operator_took(self, ticket_id: str, now: float) -> list[Action]:
        """An operator accepted this call's callback ticket while the caller is still here:
        the agent stops (even mid-reply) and the operator joins."""
        assert self.handoffs is not None
        if self.handoffs.active:
            return []
        actions = self.machine.handle(HandOff(), now)
        entities = dict(self.pipeline.entities)
        self.handoffs.start(
            self.turns,
            EscalationDecision(True, detail="callback ticket accepted during the call"),
            entities,
            announce=False,
            done=self._inbox.put_nowait,
            ticket_id=ticket_id,
        )
        return actions

    def _taken_back(self, result: HandoffResult) -> list[Action]:
        assert self.handoffs is not None
        self.handoffs.finish(result)
        self.handoffs.follow(result, self._inbox.put_nowait)
        actions = self.machine.take_back(self.handoffs.history_after(result))
        self._prefill_next()
        return actions

    def _handoff_line(self, ticket_id: str, operator_id: str, line: Line, at: float) -> None:
        call = self.call
        self._publish(lambda: self.sink.handoff_line(call, ticket_id, operator_id, line, at))

    def _publish(self, job: Callable[[], Awaitable[None]]) -> None:
        self._sink_queue.put_nowait(job)

    async def _store_answer(self, record: TurnRecord) -> None:
        """Offer the turn's answer to the semantic cache with what the turn did (on the sink
        worker, after the turn's audio): the context service alone decides whether it is
        stored. A turn without a resolved context, a question or an answer has nothing to
        offer; a failure is logged and the call goes on."""
        context = record.context
        if context is None or not record.user_text.strip() or not record.agent_text.strip():
            return
        answer = StoredAnswer(
            query=record.user_text,
            answer=record.agent_text,
            citations=context.sources,
            kb_version=context.kb_version,
            uses_live_data=context.uses_live_data,
            generated=record.generated_text,
            interrupted=record.interrupted,
            grounded=record.grounded,
            reply_source=str(record.reply_source),
            tool_calls=len(record.tool_calls),
            retrieval_confidence=context.confidence,
        )
        try:
            await self.peers.context.store_answer(self.call, answer)
        except Exception as exc:
            log.warning(
                "call %s turn %d: storing the answer failed: %r",
                self.call.call_id,
                record.turn_id,
                exc,
            )

    async def _drain_sink(self) -> None:
        while (job := await self._sink_queue.get()) is not None:
            try:
                await job()
            except Exception:
                log.exception("call %s: sink failed", self.call.call_id)

    async def _shutdown(self, reader: asyncio.Task[None], filler: asyncio.Task[None]) -> None:
        if self.handoffs is not None:
            await self.handoffs.close()
        try:
            await self._execute(self.machine.end())
        except Exception:
            log.exception("call %s: ending the turn failed", self.call.call_id)
        tasks: list[asyncio.Task[Any]] = [reader, filler, *(w.task for w in self._work.values())]
        tasks += [t for t in (self._prefill, self._prefetch) if t is not None]
        tasks += list(self._checks)
        for turn_id in list(self._work):
            self._dropped(turn_id, "call ended")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await self.transport.close()
        except Exception:
            log.debug("closing the transport failed", exc_info=True)
        try:
            await self.peers.stt.close()  # its open utterance stream
        except Exception:
            log.debug("closing the transcriber failed", exc_info=True)


def _call_attributes(call: CallInfo) -> dict[str, str]:
    return {
        "call.id": call.call_id,
        "tenant": call.tenant,
        "agent": call.agent,
        "agent.version": call.agent_version,
    }
