"""The warm handoff's state machine with a fake clock, a fake hitl service and a fake operator
leg: hold audio (never silence), accept, two-way audio and transcript, hand back, end, timeout
with a callback offer, the hitl service down, the caller hanging up."""

from __future__ import annotations

import asyncio
import struct
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from trunkline.gateway.handoff import (
    FRAME_BYTES,
    Handoff,
    HandoffAudio,
    HandoffPolicy,
    OperatorLeg,
    Outcome,
    Phase,
)
from trunkline.gateway.peers.hitl import (
    ApprovalRequest,
    EscalationRequest,
    HumanLoop,
    HumanLoopError,
    TicketState,
    TicketUpdate,
)
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.session_handoffs import load_hold_audio, soft_tone
from trunkline.testing.clock import FakeClock

pytestmark = pytest.mark.unit

CALL = CallInfo("call-1", "acme", "acme-dental", "1.0.0", caller_address="+15550001")


def frame(value: int) -> bytes:
    return struct.pack("<h", value) * (FRAME_BYTES // 2)


HOLD = frame(100) * 3  # 60 ms loop
ANNOUNCE = frame(200) * 2
RESUME = frame(300) * 2
CALLBACK = frame(400) * 2
UNAVAILABLE = frame(500)
CALLER, OPERATOR, SILENCE = frame(3000), frame(6000), bytes(FRAME_BYTES)


class FakeHitl(HumanLoop):
    def __init__(self, *, fail_escalate: bool = False, breaks: int = 0) -> None:
        self.fail_escalate = fail_escalate
        self.breaks = breaks  # watch streams that fail before one works
        self.updates: asyncio.Queue[TicketUpdate] = asyncio.Queue()
        self.escalations: list[EscalationRequest] = []
        self.callbacks: list[tuple[str, bool]] = []
        self.cancelled: list[str] = []
        self.watches = 0
        self.taken_meanwhile = False  # an operator accepts just as the gateway times out
        self.callback_refused = False  # hitl gone at the timeout: OfferCallback fails

    async def escalate(self, call: CallInfo, request: EscalationRequest) -> str:
        if self.fail_escalate:
            raise HumanLoopError("hitl: UNAVAILABLE")
        self.escalations.append(request)
        return "t-1"

    async def request_approval(self, call: CallInfo, request: ApprovalRequest) -> str:
        raise NotImplementedError

    async def watch(self, call: CallInfo, ticket_id: str) -> AsyncIterator[TicketUpdate]:
        self.watches += 1
        if self.breaks:
            self.breaks -= 1
            raise HumanLoopError("hitl: stream lost")
        yield TicketUpdate(ticket_id, TicketState.QUEUED)
        while True:
            update = await self.updates.get()
            yield update
            if update.state.terminal:
                return

    async def offer_callback(
        self, call: CallInfo, ticket_id: str, *, accepted: bool, number: str = ""
    ) -> None:
        if self.taken_meanwhile:
            raise HumanLoopError(f"ticket {ticket_id} is taken_over", "FAILED_PRECONDITION")
        if self.callback_refused:
            raise HumanLoopError("hitl: UNAVAILABLE", "UNAVAILABLE")
        self.callbacks.append((ticket_id, accepted))

    async def cancel(self, call: CallInfo, ticket_id: str, reason: str) -> None:
        self.cancelled.append(ticket_id)


class FakeLeg(OperatorLeg):
    def __init__(self) -> None:
        self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.heard: list[bytes] = []
        self.closed = False

    async def frames(self) -> AsyncIterator[bytes]:
        while (pcm := await self.incoming.get()) is not None:
            yield pcm

    async def send_caller_audio(self, pcm: bytes) -> None:
        self.heard.append(pcm)

    async def close(self) -> None:
        self.closed = True
        self.incoming.put_nowait(None)


async def transcribe(pcm: bytes) -> str:
    (first,) = struct.unpack_from("<h", pcm)
    return {3000: "my crown fell out", 6000: "we can see you at 3 pm today"}.get(first, "")


def start(
    hitl: FakeHitl, clock: FakeClock, *, announcement: bytes = ANNOUNCE
) -> tuple[Handoff, asyncio.Task[object]]:
    audio = HandoffAudio(HOLD, announcement, CALLBACK, RESUME, UNAVAILABLE)
    handoff = Handoff(
        CALL,
        hitl,
        EscalationRequest("caller_request", "asked for a person"),
        audio,
        clock=clock,
        policy=HandoffPolicy(operator_timeout_s=45.0),
        transcribe=transcribe,
    )
    return handoff, asyncio.create_task(handoff.run())


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def speak(handoff: Handoff, pcm: bytes, frames: int, *, caller: bool) -> None:
    """One side speaks ``frames`` frames then pauses 600 ms (the utterance ends)."""
    for _ in range(frames):
        if caller:
            handoff.caller_frame(pcm)
        await settle()
    for _ in range(30):
        if caller:
            handoff.caller_frame(SILENCE)
        await settle()


async def test_hold_message_then_hold_audio_never_silence() -> None:
    clock, hitl = FakeClock(), FakeHitl()
    handoff, task = start(hitl, clock)
    await settle()
    out = handoff.play(2)
    assert b"".join(out) == ANNOUNCE  # the hold message first
    hold = b"".join(handoff.play(30))
    assert hold == (HOLD * 10)  # then the hold loop, seamless
    assert all(any(f) for f in handoff.play(100))  # never a silent frame while waiting
    assert hitl.escalations[0].reason == "caller_request"
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_accept_talk_and_hand_back() -> None:
    clock, hitl = FakeClock(), FakeHitl()
    handoff, task = start(hitl, clock, announcement=b"")
    await settle()
    assert handoff.phase is Phase.WAITING
    assert handoff.ticket_id == "t-1"
    clock.advance(12.0)
    hitl.updates.put_nowait(TicketUpdate("t-1", TicketState.TAKEN_OVER, operator_id="op-7"))
    leg = FakeLeg()
    await handoff.attach(leg)
    await settle()
    assert handoff.phase is Phase.TALKING
    # The caller speaks: the operator hears it.
    await speak(handoff, CALLER, 20, caller=True)
    assert leg.heard[:20] == [CALLER] * 20
    # The operator speaks: the caller hears it (the agent is quiet).
    for _ in range(20):
        leg.incoming.put_nowait(OPERATOR)
    for _ in range(30):
        leg.incoming.put_nowait(SILENCE)
    await settle()
    heard = handoff.play(20)
    assert heard == [OPERATOR] * 20
    hitl.updates.put_nowait(
        TicketUpdate("t-1", TicketState.HANDED_BACK, operator_id="op-7", note="booked 3 pm")
    )
    await settle()
    assert handoff.phase is Phase.CLOSING
    while handoff.play(1):
        await settle()
    result = await asyncio.wait_for(task, 2)
    assert result.outcome is Outcome.HANDED_BACK
    assert result.waited_s == pytest.approx(12.0)
    assert [(line.speaker, line.text) for line in result.lines] == [
        ("caller", "my crown fell out"),
        ("operator", "we can see you at 3 pm today"),
    ]
    history = [m.text for m in result.history()]
    assert history == [
        "my crown fell out",
        "(my colleague) we can see you at 3 pm today",
        "(my colleague's note) booked 3 pm",
    ]
    assert leg.closed


async def test_resume_line_plays_before_the_agent_takes_back() -> None:
    clock, hitl = FakeClock(), FakeHitl()
    handoff, task = start(hitl, clock, announcement=b"")
    await settle()
    hitl.updates.put_nowait(TicketUpdate("t-1", TicketState.TAKEN_OVER, operator_id="op"))
    await settle()
    hitl.updates.put_nowait(TicketUpdate("t-1", TicketState.HANDED_BACK))
    await settle()
    assert not task.done()  # still closing: the resume line has not played
    assert b"".join(handoff.play(2)) == RESUME
    handoff.play(1)
    result = await asyncio.wait_for(task, 2)
    assert result.outcome is Outcome.HANDED_BACK


async def test_operator_ends_the_call() -> None:
    clock, hitl = FakeClock(), FakeHitl()
    _handoff, task = start(hitl, clock)
    await settle()
    hitl.updates.put_nowait(TicketUpdate("t-1", TicketState.TAKEN_OVER, operator_id="op"))
    hitl.updates.put_nowait(TicketUpdate("t-1", TicketState.ENDED, operator_id="op"))
    result = await asyncio.wait_for(task, 2)
    assert result.outcome is Outcome.ENDED
    assert result.operator_id == "op"


async def test_no_operator_in_time_offers_a_callback_and_keeps_the_ticket() -> None:
    clock, hitl = FakeClock(), FakeHitl()
    handoff, task = start(hitl, clock, announcement=b"")
    await settle()
    await clock.advance_and_settle(44.9)
    assert handoff.phase is Phase.WAITING
    assert any(handoff.play(1)[0])
    await clock.advance_and_settle(0.2)
    assert handoff.phase is Phase.CLOSING
    assert hitl.callbacks == [("t-1", False)]  # offered; the caller answers on the next turn
    assert hitl.cancelled == []
    assert b"".join(handoff.play(2)) == CALLBACK
    handoff.play(1)
    result = await asyncio.wait_for(task, 2)
    assert result.outcome is Outcome.TIMED_OUT
    assert result.callback_offered
    assert result.waited_s == pytest.approx(45.1)


async def test_a_ticket_that_cannot_take_a_callback_is_no_callback_offer() -> None:
    clock, hitl = FakeClock(), FakeHitl()
    hitl.callback_refused = True  # hitl went away while the caller waited
    handoff, task = start(hitl, clock, announcement=b"")
    await settle()
    await clock.advance_and_settle(45.1)
    assert b"".join(handoff.play(1)) == UNAVAILABLE  # not a question nobody could answer
    handoff.play(1)
    result = await asyncio.wait_for(task, 2)
    assert result.outcome is Outcome.TIMED_OUT
    assert not result.callback_offered


async def test_hitl_unreachable_the_agent_resumes_honestly() -> None:
    clock, hitl = FakeClock(), FakeHitl(fail_escalate=True)
    handoff, task = start(hitl, clock, announcement=b"")
    await settle()
    assert b"".join(handoff.play(1)) == UNAVAILABLE
    handoff.play(1)
    result = await asyncio.wait_for(task, 2)
    assert result.outcome is Outcome.UNAVAILABLE


async def test_ticket_stream_lost_and_back_still_gets_the_operator() -> None:
    clock, hitl = FakeClock(), FakeHitl(breaks=2)
    handoff, task = start(hitl, clock, announcement=b"")
    await settle()
    await clock.advance_and_settle(0.2)
    await clock.advance_and_settle(0.4)
    assert hitl.watches == 3
    hitl.updates.put_nowait(TicketUpdate("t-1", TicketState.TAKEN_OVER, operator_id="op"))
    await settle()
    assert handoff.phase is Phase.TALKING
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_caller_hangs_up_while_waiting_cancels_the_ticket() -> None:
    clock, hitl = FakeClock(), FakeHitl()
    handoff, task = start(hitl, clock)
    await settle()
    handoff.caller_hung_up()
    result = await asyncio.wait_for(task, 2)
    assert result.outcome is Outcome.CALL_ENDED
    assert hitl.cancelled == ["t-1"]


async def test_dismissed_escalation_resumes_the_agent() -> None:
    clock, hitl = FakeClock(), FakeHitl()
    handoff, task = start(hitl, clock, announcement=b"")
    await settle()
    hitl.updates.put_nowait(TicketUpdate("t-1", TicketState.DECIDED))
    await settle()
    handoff.play(3)
    result = await asyncio.wait_for(task, 2)
    assert result.outcome is Outcome.DISMISSED


def test_no_hold_audio_is_refused() -> None:
    with pytest.raises(ValueError, match="silence"):
        Handoff(
            CALL,
            FakeHitl(),
            EscalationRequest("caller_request"),
            HandoffAudio(b""),
            clock=FakeClock(),
        )


def test_hold_audio_from_a_wav_file(tmp_path: Path) -> None:
    path = tmp_path / "hold.wav"
    with wave.open(str(path), "wb") as wav:  # 8 kHz stereo, 0.5 s
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(struct.pack("<hh", 1000, 3000) * 4000)
    pcm = load_hold_audio(path)
    assert len(pcm) == 16000  # 0.5 s at 16 kHz mono PCM16
    middle = struct.unpack_from("<h", pcm, 8000)[0]
    assert 1900 <= middle <= 2100  # the channels mixed
    (tmp_path / "bad.wav").write_bytes(b"not a wav")
    with pytest.raises(ValueError, match=r"bad\.wav: hold audio is not a readable WAV"):
        load_hold_audio(tmp_path / "bad.wav")
    with pytest.raises(ValueError, match=r"missing\.wav"):
        load_hold_audio(tmp_path / "missing.wav")


def test_generated_hold_tone_is_soft_and_never_silent() -> None:
    for rate in (8000, 16000):
        pcm = soft_tone(rate)
        size = rate // 50 * 2
        frames = [pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size)]
        assert len(frames) == 200  # a 4 s loop
        peaks = [max(abs(s) for s in memoryview(f).cast("h")) for f in frames]
        assert min(peaks) > 0  # no silent frame
        assert max(peaks) < 0.1 * 32768  # soft


async def test_operator_accepting_as_the_wait_times_out_gets_the_call() -> None:
    clock, hitl = FakeClock(), FakeHitl()
    hitl.taken_meanwhile = True  # TAKEN_OVER is on its way when the timer fires
    handoff, task = start(hitl, clock, announcement=b"")
    await settle()
    await clock.advance_and_settle(45.5)
    assert handoff.phase is Phase.TALKING  # no callback offer, no resume: the operator is on
    assert hitl.callbacks == []
    hitl.updates.put_nowait(TicketUpdate("t-1", TicketState.TAKEN_OVER, operator_id="op"))
    hitl.updates.put_nowait(TicketUpdate("t-1", TicketState.HANDED_BACK, operator_id="op"))
    await settle()
    handoff.play(3)
    result = await asyncio.wait_for(task, 2)
    assert result.outcome is Outcome.HANDED_BACK
