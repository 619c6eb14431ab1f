"""Warm handoff of a live call to a human operator, without ever dropping the call.

This module is the gateway side of human-in-the-loop. It holds:

- :class:`OperatorLeg` — the operator's audio in a handed-off call (an ABC; the WebRTC
  implementation with aiortc lives in ``transports/webrtc*.py``, tests use a fake). Frames are
  the gateway's internal type: 16 kHz mono PCM16, 20 ms (640 bytes).
- the handoff state machine (waiting for an operator → operator talking → handed back / ended /
  timed out), driven by the hitl service's ``WaitDecision`` stream.

Contract of :class:`OperatorLeg` (agreed with helper D):
- ``frames()`` yields the operator's voice as 640-byte frames and ends when the operator leaves
  (or ``close()`` was called); it never raises on a normal hang-up.
- ``send_caller_audio(pcm)`` queues the caller's voice (any multiple of 2 bytes of 16 kHz PCM16)
  for the operator to hear; it never blocks on the network (drop rather than stall the call).
- ``close()`` is idempotent and ends ``frames()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from trunkline.audio import pcm16_dbfs, resample_pcm16
from trunkline.gateway.core.clock import Clock
from trunkline.gateway.core.events import Message
from trunkline.gateway.peers.hitl import (
    EscalationRequest,
    HumanLoop,
    HumanLoopError,
    Line,
    TicketState,
    TicketUpdate,
)
from trunkline.gateway.peers.retry import within
from trunkline.gateway.peers.types import CallInfo

log = logging.getLogger(__name__)
FRAME_BYTES = 640  # 20 ms of 16 kHz mono PCM16


class OperatorLeg(ABC):
    """The operator's side of a handed-off call's audio."""

    name: str = "operator"

    @abstractmethod
    def frames(self) -> AsyncIterator[bytes]:
        """The operator's voice: 20 ms 16 kHz mono PCM16 frames, until they leave."""

    @abstractmethod
    async def send_caller_audio(self, pcm: bytes) -> None:
        """Queue the caller's voice (16 kHz mono PCM16) for the operator to hear."""

    @abstractmethod
    async def close(self) -> None:
        """Leave the call (idempotent); ``frames()`` ends."""


# ---- the handoff --------------------------------------------------------------------------


class Phase(StrEnum):
    WAITING = "waiting"  # the hold message, then hold audio, until an operator accepts
    TALKING = "talking"  # the operator is on the call; the agent is quiet and transcribes
    CLOSING = "closing"  # the last line (callback offer, resume, unavailable) plays
    DONE = "done"


class Outcome(StrEnum):
    HANDED_BACK = "handed_back"  # the agent resumes, knowing what was said
    ENDED = "ended"  # the operator ended the call
    TIMED_OUT = "timed_out"  # no operator in time: a callback offered, the ticket stays
    DISMISSED = "dismissed"  # the operator declined the escalation: the agent resumes
    UNAVAILABLE = "unavailable"  # the hitl service could not be reached: the agent resumes
    CALL_ENDED = "call_ended"  # the caller hung up meanwhile


@dataclass(frozen=True, slots=True)
class HandoffAudio:
    """What the caller hears, rendered once at the transport's output rate. ``announcement``
    is the hold message (empty when the triggering turn already spoke it)."""

    hold: bytes
    announcement: bytes = b""
    callback: bytes = b""
    resume: bytes = b""
    unavailable: bytes = b""


@dataclass(frozen=True, slots=True)
class HandoffPolicy:
    operator_timeout_s: float = 60.0
    out_frame_bytes: int = FRAME_BYTES  # one 20 ms frame at the transport's output rate
    out_rate: int = 16000
    escalate_timeout_s: float = 5.0  # Escalate (and its retries through a hitl restart)
    close_timeout_s: float = 15.0  # the last line must have played by then
    quiet_dbfs: float = -45.0  # a frame below it is a pause in a side's speech
    pause_frames: int = 25  # 500 ms of pause ends a side's utterance (for the transcript)
    max_utterance_frames: int = 750  # 15 s: an utterance is transcribed in pieces


@dataclass(frozen=True, slots=True)
class HandoffResult:
    outcome: Outcome
    ticket_id: str = ""
    lines: tuple[Line, ...] = ()  # what the caller and the operator said, in order
    note: str = ""  # the operator's hand-back note
    operator_id: str = ""
    waited_s: float = 0.0  # escalation to accept (or to the timeout)
    callback_offered: bool = False  # timed out and the offer is on the ticket: the caller asked

    def history(self) -> list[Message]:
        """What the agent should know when it resumes, as history lines."""
        out: list[Message] = []
        for line in self.lines:
            if line.speaker == "caller":
                out.append(Message("user", line.text))
            else:
                out.append(Message("agent", f"(my colleague) {line.text}"))
        if self.note:
            out.append(Message("agent", f"(my colleague's note) {self.note}"))
        return out


Transcribe = Callable[[bytes], Awaitable[str]]


class _Side:
    """One side's speech cut into utterances by pauses, for the transcript."""

    def __init__(self, speaker: str, policy: HandoffPolicy) -> None:
        self.speaker = speaker
        self.policy = policy
        self._pcm = bytearray()
        self._voiced = 0
        self._quiet = 0
        self.started_at = 0.0

    def push(self, pcm: bytes, now: float) -> bytes | None:
        """Add a 16 kHz frame; a finished utterance when this frame ends one."""
        loud = pcm16_dbfs(pcm) > self.policy.quiet_dbfs
        if not self._pcm and not loud:
            return None
        if not self._pcm:
            self.started_at = now
        self._pcm += pcm
        self._voiced += loud
        self._quiet = 0 if loud else self._quiet + 1
        frames = len(self._pcm) // FRAME_BYTES
        if self._quiet >= self.policy.pause_frames or frames >= self.policy.max_utterance_frames:
            return self.flush()
        return None

    def flush(self) -> bytes | None:
        pcm, voiced = bytes(self._pcm), self._voiced
        self._pcm.clear()
        self._voiced = self._quiet = 0
        return pcm if voiced >= 5 else None  # under 100 ms of sound: a click, not words


class Handoff:
    """One escalation of a live call, from the hold message to the agent taking it back.

    The session feeds it the caller's frames (``caller_frame``) and the transport's outbound
    ticks (``play``), and runs ``run()`` as a task; an operator's audio arrives by ``attach``.
    The caller hears the hold message, then hold audio (never silence) while the ticket waits,
    then the operator; the call is never ended here except when the operator ends it.
    """

    def __init__(
        self,
        call: CallInfo,
        hitl: HumanLoop,
        request: EscalationRequest,
        audio: HandoffAudio,
        *,
        clock: Clock,
        policy: HandoffPolicy | None = None,
        transcribe: Transcribe | None = None,
        ticket_id: str = "",
    ) -> None:
        """``ticket_id``: a ticket an operator already accepted (a callback ticket taken while
        the caller is still on the line): no new escalation, the operator talks at once."""
        if not audio.hold:
            raise ValueError("hold audio is required: a caller on hold never hears silence")
        self.call = call
        self.hitl = hitl
        self.request = request
        self.audio = audio
        self.clock = clock
        self.policy = policy or HandoffPolicy()
        self.transcribe = transcribe
        self.phase = Phase.WAITING
        self.ticket_id = ticket_id
        self.leg: OperatorLeg | None = None
        self.started_at = clock.now()
        self.first_audio_at: float | None = None  # the first frame the caller got from us
        self._out = bytearray(audio.announcement)  # queued one-off audio (messages)
        self._hold_pos = 0
        self._operator: deque[bytes] = deque(maxlen=50)  # 1 s jitter buffer
        self._sides = {
            "caller": _Side("caller", self.policy),
            "operator": _Side("operator", self.policy),
        }
        self._lines: list[tuple[float, int, Line]] = []
        self._pending: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._accepted = asyncio.Event()
        self._closed = asyncio.Event()  # the closing line has played
        self._caller_gone = asyncio.Event()
        self._updates: asyncio.Queue[TicketUpdate | None] = asyncio.Queue()
        self._operator_id = ""
        self._seq = 0
        # told of each line as soon as it is transcribed (the console's live transcript)
        self.on_line: Callable[[Line, float], None] | None = None

    @property
    def operator_id(self) -> str:
        """The operator on the call, once the gateway learned it (empty before)."""
        return self._operator_id

    # ---- from the session -------------------------------------------------------------------

    def play(self, frames: int = 1) -> list[bytes]:
        """Outbound audio for ``frames`` ticks of the transport's clock."""
        size = self.policy.out_frame_bytes
        out: list[bytes] = []
        for _ in range(frames):
            frame = self._next_frame(size)
            if frame is None:
                break
            out.append(frame)
        if out and self.first_audio_at is None:
            self.first_audio_at = self.clock.now()
        return out

    def caller_frame(self, pcm: bytes) -> None:
        """A 16 kHz frame of the caller's voice: to the operator, and into the transcript."""
        if self.phase is not Phase.TALKING:
            return
        if self.leg is not None:
            self._spawn(self._send_to_operator(pcm))
        self._heard("caller", pcm)

    async def attach(self, leg: OperatorLeg) -> None:
        """The operator's audio joined the call (their WebRTC leg is up)."""
        if self.phase in (Phase.CLOSING, Phase.DONE):
            await leg.close()
            raise RuntimeError(f"call {self.call.call_id}: the handoff is over")
        if self.leg is not None:
            await self.leg.close()
        self.leg = leg
        self._reader = asyncio.create_task(self._read_operator(leg))
        self._take_call()

    def caller_hung_up(self) -> None:
        self._caller_gone.set()

    def update_audio(self, audio: HandoffAudio) -> None:
        """Lines rendered after the handoff began: a hold message still due plays next (while
        the caller waits; not once an operator talks); the closing lines are read when used."""
        new = audio.announcement and audio.announcement != self.audio.announcement
        self.audio = replace(audio, hold=self.audio.hold)
        if new and self.phase is Phase.WAITING:
            self._out += audio.announcement

    # ---- control ----------------------------------------------------------------------------

    async def run(self) -> HandoffResult:
        """Escalate, wait for an operator or the timeout, follow the ticket to its end."""
        try:
            return await self._run()
        finally:
            await self._stop()

    async def _run(self) -> HandoffResult:
        p = self.policy
        if self.ticket_id:  # already accepted
            self._take_call()
        else:
            try:
                self.ticket_id = await within(
                    self.clock, p.escalate_timeout_s, self.hitl.escalate(self.call, self.request)
                )
            except (HumanLoopError, TimeoutError) as exc:
                log.warning("call %s: escalation failed: %s", self.call.call_id, exc)
                return await self._close(Outcome.UNAVAILABLE, self.audio.unavailable)
        watcher = asyncio.create_task(self._watch())
        self._pending.add(watcher)
        deadline = self.started_at + p.operator_timeout_s
        # Until an operator accepts: updates, the caller hanging up, or the timeout.
        while not self._accepted.is_set():
            update = await self._next_update(deadline - self.clock.now())
            if self._caller_gone.is_set():
                return await self._caller_left()
            if update is None:  # timed out (or the ticket stream is gone for good)
                if self._accepted.is_set():
                    break
                result = await self._timed_out()
                if result is None:  # an operator accepted at the last moment
                    continue
                return result
            if update.state is TicketState.TAKEN_OVER:
                self._operator_id = update.operator_id
                self._take_call()
            elif update.state.terminal:
                return await self._terminal(update)
        waited = self.clock.now() - self.started_at
        # The operator is on the call: as long as they need.
        while True:
            update = await self._next_update(None)
            if self._caller_gone.is_set():
                return await self._caller_left()
            if update is None:  # hitl lost while talking: the operator's audio decides
                if self.leg is None:
                    return await self._close(Outcome.UNAVAILABLE, self.audio.unavailable, waited)
                continue
            if update.state.terminal:
                return await self._terminal(update, waited)

    async def _next_update(self, within_s: float | None) -> TicketUpdate | None:
        """The next ticket update; None on timeout, when the caller left or the stream ended."""
        getter = asyncio.ensure_future(self._updates.get())
        waits: set[asyncio.Future[Any]] = {getter, asyncio.ensure_future(self._caller_gone.wait())}
        accepted = None
        if within_s is not None:
            waits.add(asyncio.ensure_future(self.clock.sleep(max(0.0, within_s))))
            if not self._accepted.is_set():
                accepted = asyncio.ensure_future(self._accepted.wait())
                waits.add(accepted)
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                if w is not getter:
                    w.cancel()
        if getter in done:
            return getter.result()
        getter.cancel()
        if accepted is not None and accepted in done:  # attach() took the call
            return TicketUpdate(self.ticket_id, TicketState.TAKEN_OVER, operator_id="")
        return None

    async def _watch(self) -> None:
        """Feed the ticket's updates to ``run``; a broken stream is retried (the hitl service
        may restart while the caller waits: the ticket survives it)."""
        delay = 0.2
        while True:
            try:
                async for update in self.hitl.watch(self.call, self.ticket_id):
                    self._updates.put_nowait(update)
                    delay = 0.2
                    if update.state.terminal:
                        return
            except HumanLoopError as exc:
                log.info("call %s: ticket stream lost (%s); retrying", self.call.call_id, exc)
            await self.clock.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _take_call(self) -> None:
        if self.phase is Phase.WAITING:
            self.phase = Phase.TALKING
            self._out.clear()  # the rest of the hold message is not needed now
        self._accepted.set()

    async def _terminal(self, update: TicketUpdate, waited: float | None = None) -> HandoffResult:
        self._operator_id = update.operator_id or self._operator_id
        waited = self.clock.now() - self.started_at if waited is None else waited
        match update.state:
            case TicketState.HANDED_BACK:
                return await self._close(
                    Outcome.HANDED_BACK, self.audio.resume, waited, update.note
                )
            case TicketState.ENDED:
                return await self._close(Outcome.ENDED, b"", waited, update.note)
            case TicketState.EXPIRED:
                result = await self._timed_out(expired=True)
                assert result is not None
                return result
            case _:  # dismissed (DECIDED/denied) or cancelled: the agent keeps the call
                return await self._close(Outcome.DISMISSED, self.audio.resume, waited, update.note)

    async def _timed_out(self, *, expired: bool = False) -> HandoffResult | None:
        """No operator in time: the caller is asked whether a colleague should call back (the
        offer is recorded, not yet accepted: the caller's next turn answers it); the ticket
        stays queued. None when the ticket turns out taken over meanwhile (the operator is on
        the call)."""
        try:
            await within(
                self.clock,
                self.policy.escalate_timeout_s,
                self.hitl.offer_callback(self.call, self.ticket_id, accepted=False),
            )
        except HumanLoopError as exc:
            if exc.code == "FAILED_PRECONDITION" and not expired:
                log.info("call %s: no callback: %s; following the ticket", self.call.call_id, exc)
                self._take_call()
                return None
            log.warning("call %s: callback not recorded: %s", self.call.call_id, exc)
        except TimeoutError as exc:
            log.warning("call %s: callback not recorded: %s", self.call.call_id, exc)
        else:
            waited = self.clock.now() - self.started_at
            result = await self._close(Outcome.TIMED_OUT, self.audio.callback, waited)
            return replace(result, callback_offered=True)
        # the ticket cannot take a callback (expired, hitl unreachable): no promise to ask about
        waited = self.clock.now() - self.started_at
        return await self._close(Outcome.TIMED_OUT, self.audio.unavailable, waited)

    async def _caller_left(self) -> HandoffResult:
        if self.ticket_id and not self._accepted.is_set():
            with contextlib.suppress(HumanLoopError, TimeoutError):
                await within(
                    self.clock,
                    self.policy.escalate_timeout_s,
                    self.hitl.cancel(self.call, self.ticket_id, "the caller hung up"),
                )
        self.phase = Phase.DONE
        return self._result(Outcome.CALL_ENDED, self.clock.now() - self.started_at)

    async def _close(
        self, outcome: Outcome, line: bytes, waited: float = 0.0, note: str = ""
    ) -> HandoffResult:
        """Play the closing line out (paced by ``play``), then hand the call back."""
        await self._finish_transcripts()
        self.phase = Phase.CLOSING
        self._out = bytearray(line)
        if line and not self._caller_gone.is_set():
            with contextlib.suppress(TimeoutError):
                await within(self.clock, self.policy.close_timeout_s, self._closed.wait())
        self.phase = Phase.DONE
        return self._result(outcome, waited, note)

    def _result(self, outcome: Outcome, waited: float, note: str = "") -> HandoffResult:
        lines = tuple(line for _, _, line in sorted(self._lines, key=lambda x: (x[0], x[1])))
        return HandoffResult(outcome, self.ticket_id, lines, note, self._operator_id, waited)

    async def _stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        if self.leg is not None:
            with contextlib.suppress(Exception):
                await self.leg.close()

    # ---- audio ------------------------------------------------------------------------------

    def _next_frame(self, size: int) -> bytes | None:
        if self._out:
            frame = bytes(self._out[:size]).ljust(size, b"\0")
            del self._out[:size]
            if not self._out and self.phase is Phase.CLOSING:
                self._closed.set()
            return frame
        match self.phase:
            case Phase.WAITING:
                return self._hold_frame(size)
            case Phase.TALKING:
                return self._operator.popleft() if self._operator else bytes(size)
            case Phase.CLOSING:
                self._closed.set()
                return None
            case _:
                return None

    def _hold_frame(self, size: int) -> bytes:
        hold = self.audio.hold
        out = bytearray()
        while len(out) < size:
            chunk = hold[self._hold_pos : self._hold_pos + size - len(out)]
            out += chunk
            self._hold_pos = (self._hold_pos + len(chunk)) % len(hold)
        return bytes(out)

    async def _read_operator(self, leg: OperatorLeg) -> None:
        try:
            async for pcm in leg.frames():
                if self.phase is not Phase.TALKING:
                    continue
                self._heard("operator", pcm)
                out = pcm
                if self.policy.out_rate != 16000:
                    out = resample_pcm16(pcm, 16000, self.policy.out_rate)
                self._operator.append(out.ljust(self.policy.out_frame_bytes, b"\0"))
        except Exception as exc:  # the operator's leg failing never touches the caller's
            log.warning("call %s: operator leg failed: %r", self.call.call_id, exc)

    async def _send_to_operator(self, pcm: bytes) -> None:
        leg = self.leg
        if leg is None:
            return
        try:
            await leg.send_caller_audio(pcm)
        except Exception as exc:
            log.info("call %s: caller audio to operator dropped: %r", self.call.call_id, exc)

    # ---- transcript -------------------------------------------------------------------------

    def _heard(self, speaker: str, pcm: bytes) -> None:
        side = self._sides[speaker]
        utterance = side.push(pcm, self.clock.now())
        if utterance is not None:
            self._queue_transcription(speaker, utterance, side.started_at)

    def _queue_transcription(self, speaker: str, pcm: bytes, at: float) -> None:
        if self.transcribe is None:
            return
        self._seq += 1
        self._spawn(self._transcribe(speaker, pcm, at, self._seq))

    async def _transcribe(self, speaker: str, pcm: bytes, at: float, seq: int) -> None:
        assert self.transcribe is not None
        try:
            text = (await self.transcribe(pcm)).strip()
        except Exception as exc:
            log.warning("call %s: handoff transcription failed: %r", self.call.call_id, exc)
            return
        if text:
            line = Line(speaker, text)
            self._lines.append((at, seq, line))
            if self.on_line is not None:
                try:
                    self.on_line(line, at)
                except Exception as exc:  # publishing never touches the call
                    log.warning("call %s: handoff line not published: %r", self.call.call_id, exc)

    async def _finish_transcripts(self) -> None:
        for speaker, side in self._sides.items():
            rest = side.flush()
            if rest is not None:
                self._queue_transcription(speaker, rest, side.started_at)
        pending = [t for t in self._pending if t.get_name().startswith("transcribe")]
        if pending:
            with contextlib.suppress(TimeoutError):
                await within(self.clock, 5.0, asyncio.gather(*pending, return_exceptions=True))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        name = getattr(work, "__name__", "work").lstrip("_")
        task = asyncio.create_task(work, name=name)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
