"""The call session's side of human-in-the-loop: the per-turn escalation decisions, the
handoff audio (hold message, closing lines) rendered once, at most one :class:`Handoff` at a
time, and the callback ticket followed after a timeout. ``session.py`` holds a small hook."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import wave
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from opentelemetry import trace

from trunkline.audio import float32_to_pcm16, frame_bytes, resample_pcm16
from trunkline.gateway.core.callback import CallbackAnswer
from trunkline.gateway.core.clock import Clock
from trunkline.gateway.core.escalation import EscalationDecision
from trunkline.gateway.core.events import Message
from trunkline.gateway.escalations import Escalations, HumanSide, escalation_request
from trunkline.gateway.fillers import FillerCache
from trunkline.gateway.handoff import (
    Handoff,
    HandoffAudio,
    HandoffPolicy,
    HandoffResult,
    OperatorLeg,
    Outcome,
)
from trunkline.gateway.metrics import GatewayMetrics
from trunkline.gateway.peers.base import Synthesizer, Transcriber
from trunkline.gateway.peers.hitl import HumanLoopError, Line, TicketState
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.records import TurnRecord

log = logging.getLogger(__name__)


def soft_tone(rate: int = 16000, level: float = 0.06) -> bytes:
    """Generated hold audio: a slow, quiet four-note chime loop (4 s), never silence."""
    notes = (523.25, 659.25, 783.99, 659.25)  # C5 E5 G5 E5
    n = int(rate * 1.0)
    t = np.arange(n, dtype=np.float32) / rate
    envelope = np.minimum(1.0, t / 0.05) * np.exp(-2.0 * t)  # soft attack, gentle decay
    floor = 0.15 * np.minimum(1.0, np.minimum(t, t[::-1]) / 0.05)  # a hum between notes
    parts = [
        level * (envelope + floor) * np.sin(2 * np.pi * hz * t)
        + level * 0.3 * floor * np.sin(2 * np.pi * 130.81 * t)
        for hz in notes
    ]
    return float32_to_pcm16(np.concatenate(parts))


def load_hold_audio(path: str | Path) -> bytes:
    """A WAV file as 16 kHz mono PCM16 (its channels mixed); a clear error naming the file."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            data = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise ValueError(f"{path}: hold audio is not a readable WAV file: {exc}") from exc
    if width != 2:
        raise ValueError(f"{path}: hold audio must be 16-bit PCM (got {8 * width}-bit)")
    samples = np.frombuffer(data, dtype="<i2").astype(np.float32)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    if not len(samples):
        raise ValueError(f"{path}: hold audio is empty")
    pcm = float32_to_pcm16(samples / 32768.0)
    return pcm if rate == 16000 else resample_pcm16(pcm, rate, 16000)


LineSink = Callable[[str, str, Line, float], None]


@dataclass(frozen=True, slots=True)
class OperatorTook:
    """The session's inbox item when an operator accepted a callback ticket of a call that
    is still up."""

    ticket_id: str
    operator_id: str = ""


@dataclass(frozen=True, slots=True)
class HandoffDone:
    """The session's inbox item when a handoff is over."""

    result: HandoffResult


class SessionHandoffs:
    """What a call session needs for human-in-the-loop: the per-turn escalation decisions,
    the handoff audio rendered once, and at most one :class:`Handoff` at a time."""

    def __init__(
        self,
        call: CallInfo,
        side: HumanSide,
        *,
        clock: Clock,
        fillers: FillerCache,
        transcriber: Transcriber,
        synthesizer: Synthesizer,
        metrics: GatewayMetrics | None = None,
        out_rate: int = 16000,
        lines: LineSink | None = None,
    ) -> None:
        """``lines``: told of each line said while an operator is on the call, as soon as it
        is transcribed (ticket id, operator id, the line, wall-clock seconds it started)."""
        self.call = call
        self.lines = lines
        self.side = side
        self.clock = clock
        self.fillers = fillers
        self.transcriber = transcriber
        self.synthesizer = synthesizer
        self.metrics = metrics
        self.out_rate = out_rate
        self.escalations = Escalations(side, metrics)
        self.escalations.clips = lambda text: fillers.cached(synthesizer, call, text)
        self.handoff: Handoff | None = None
        self.results: list[HandoffResult] = []
        self._task: asyncio.Task[HandoffResult] | None = None
        self._renderer: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None
        self._work: set[asyncio.Task[None]] = set()  # callback answers being recorded
        self._offered = ""  # the ticket of the last callback offer (withdrawn at the end)
        hold = side.hold_pcm
        if hold and out_rate != 16000:
            hold = resample_pcm16(hold, 16000, out_rate)
        self._audio = HandoffAudio(hold or soft_tone(out_rate))

    @property
    def active(self) -> bool:
        return self.handoff is not None

    async def _render(self, handoff: Handoff, announce: bool) -> None:
        """The hold message and the closing lines through TTS when a handoff starts (not at
        every call's start: they would compete with the greeting for TTS; once rendered they
        are cached per agent version). Meanwhile the hold audio plays."""
        texts = self.side.texts

        async def get(text: str) -> bytes:
            return await self.fillers.get(self.synthesizer, self.call, text)

        rendered = await get(texts.handoff)  # cached: the next escalating turn plays it
        handoff.update_audio(replace(handoff.audio, announcement=rendered if announce else b""))
        handoff.update_audio(
            replace(
                handoff.audio,
                callback=await get(texts.callback),
                resume=await get(texts.resume),
                unavailable=await get(texts.unavailable),
            )
        )

    def decision_after(self, record: TurnRecord) -> EscalationDecision | None:
        """Whether the finished turn escalates the call (its plan did, or its tools failed).
        A turn that answered a callback offer gets its answer recorded on the ticket."""
        if self.handoff is not None:
            return None
        if record.greeting:  # the greeting has played: the hold message now, once per version
            self._spawn(self._prepare())
        answered = self.escalations.answered(record)
        if answered is not None:
            ticket_id, answer = answered
            self._spawn(self._record_callback(ticket_id, answer))
        return self.escalations.finished(record)

    async def _prepare(self) -> None:
        """Render the hold message ahead (kept per agent version by the filler cache), so the
        first escalating turn of the version plays it without waiting for TTS."""
        await self.fillers.get(self.synthesizer, self.call, self.side.texts.handoff)

    async def _record_callback(self, ticket_id: str, answer: CallbackAnswer) -> None:
        try:
            await self.side.hitl.offer_callback(
                self.call, ticket_id, accepted=answer.accepted, number=answer.number
            )
        except HumanLoopError as exc:
            log.warning("call %s: the callback answer was not recorded: %s", self.call.call_id, exc)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._work.add(task)
        task.add_done_callback(self._work.discard)

    def start(
        self,
        turns: list[TurnRecord],
        decision: EscalationDecision,
        entities: dict[str, str],
        *,
        announce: bool,
        done: Callable[[HandoffDone], None],
        ticket_id: str = "",
    ) -> Handoff:
        """Hand the call over; ``done`` gets a ``HandoffDone`` when it is over. With
        ``ticket_id``: an operator accepted that (callback) ticket, join them at once."""
        self._stop_following()
        if ticket_id == self._offered:
            self._offered = ""  # the callback ticket taken: this handoff follows it
        request = escalation_request(self.call, turns, decision, entities)
        audio = self._audio  # the lines follow (``_render``); the hold audio is ready now
        policy = HandoffPolicy(
            operator_timeout_s=self.side.operator_timeout_s,
            out_frame_bytes=frame_bytes(self.out_rate),
            out_rate=self.out_rate,
        )
        handoff = Handoff(
            self.call,
            self.side.hitl,
            request,
            audio,
            clock=self.clock,
            policy=policy,
            transcribe=self._transcribe,
            ticket_id=ticket_id,
        )
        self.handoff = handoff
        if self.lines is not None:
            handoff.on_line = lambda line, at: self._line(handoff, line, at)
        trace.get_current_span().add_event(
            "handoff.started",
            {"reason": request.reason, "detail": request.detail, "announce": announce},
        )

        def finished(task: asyncio.Task[HandoffResult]) -> None:
            if task.cancelled():
                return
            error = task.exception()
            result = (
                HandoffResult(Outcome.UNAVAILABLE, handoff.ticket_id)
                if error is not None
                else task.result()
            )
            if error is not None:
                log.error("call %s: handoff failed: %r", self.call.call_id, error)
            done(HandoffDone(result))

        self._task = asyncio.create_task(handoff.run())
        self._task.add_done_callback(finished)
        self._renderer = asyncio.create_task(self._render(handoff, announce))
        return handoff

    def _line(self, handoff: Handoff, line: Line, at: float) -> None:
        assert self.lines is not None
        spoken_at = time.time() - max(0.0, self.clock.now() - at)  # the handoff's clock: wall
        self.lines(handoff.ticket_id, handoff.operator_id, line, spoken_at)

    def finish(self, result: HandoffResult) -> None:
        """The handoff is over (the session takes the call back or ends it)."""
        self.handoff = None
        self._task = None
        self.results.append(result)
        trace.get_current_span().add_event(
            "handoff.finished",
            {
                "outcome": result.outcome.value,
                "ticket_id": result.ticket_id,
                "operator_id": result.operator_id,
                "waited_ms": round(result.waited_s * 1000, 1),
                "lines": len(result.lines),
            },
        )
        if self.metrics is not None:
            self.metrics.handoffs.add(1, {"outcome": result.outcome.value})
        if result.callback_offered and result.ticket_id:
            self._offered = result.ticket_id
            self.escalations.ask_callback(result.ticket_id)  # the next turn may answer

    def history_after(self, result: HandoffResult) -> list[Message]:
        """What the agent knows when it takes the call back: what was said meanwhile, and the
        question it asked when no operator came (the caller's next words answer it)."""
        history = result.history()
        if result.callback_offered:
            history.append(Message("agent", self.side.texts.callback))
        return history

    def follow(self, result: HandoffResult, taken: Callable[[OperatorTook], None]) -> None:
        """After a callback offer the ticket stays queued: an operator who accepts it while
        the caller is still on the line joins the call (``taken`` gets an ``OperatorTook``)."""
        if result.outcome is not Outcome.TIMED_OUT or not result.ticket_id:
            return
        self._stop_following()
        self._follower = asyncio.create_task(self._follow(result.ticket_id, taken))

    async def _follow(self, ticket_id: str, taken: Callable[[OperatorTook], None]) -> None:
        delay = 0.2
        while True:
            try:
                async for update in self.side.hitl.watch(self.call, ticket_id):
                    delay = 0.2
                    if update.state is TicketState.TAKEN_OVER:
                        taken(OperatorTook(ticket_id, update.operator_id))
                        return
                    if update.state.terminal:
                        return
            except HumanLoopError as exc:
                log.info("call %s: callback ticket stream lost (%s)", self.call.call_id, exc)
            await self.clock.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _stop_following(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            self._follower = None

    def caller_frame(self, pcm: bytes) -> None:
        if self.handoff is not None:
            self.handoff.caller_frame(pcm)

    def play(self, frames: int) -> list[bytes]:
        return self.handoff.play(frames) if self.handoff is not None else []

    def caller_hung_up(self) -> None:
        if self.handoff is not None:
            self.handoff.caller_hung_up()

    async def attach(self, ticket_id: str, leg: OperatorLeg) -> None:
        handoff = self.handoff
        if handoff is None or not ticket_id or handoff.ticket_id != ticket_id:
            await leg.close()
            raise LookupError(f"call {self.call.call_id} has no handoff for ticket {ticket_id!r}")
        await handoff.attach(leg)

    async def close(self) -> None:
        """The call ended: the pending ticket is withdrawn (a short wait), then stopped. A
        ticket whose callback the caller did not accept is withdrawn too (an accepted one
        stays queued for the operator who calls back: the hitl service keeps it)."""
        if self._renderer is not None:
            self._renderer.cancel()
        self._stop_following()
        unfinished = self.escalations.unfinished_answer()
        if unfinished is not None:  # answered, and hung up during the confirmation
            self._spawn(self._record_callback(*unfinished))
        if self._work:
            await asyncio.wait(self._work, timeout=3.0)
        if self._offered:
            with contextlib.suppress(HumanLoopError, TimeoutError):
                reason = "the call ended (a callback accepted keeps the ticket)"
                await asyncio.wait_for(self.side.hitl.cancel(self.call, self._offered, reason), 3.0)
        task, handoff = self._task, self.handoff
        if task is None or handoff is None:
            return
        handoff.caller_hung_up()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(task), 3.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def _transcribe(self, pcm: bytes) -> str:
        return (await self.transcriber.transcribe(self.call, pcm)).text
