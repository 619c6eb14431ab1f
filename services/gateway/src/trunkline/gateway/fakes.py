"""In-memory implementations of the gateway's ABCs, for tests and in-process runs.

Each fake implements the real ABC, so the public methods' deadlines, retries, metrics and
tracing run exactly as in production.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trunkline.gateway.core.events import Message, State
from trunkline.gateway.peers.base import (
    ContextSource,
    LanguageModel,
    PeerEnv,
    PeerUnavailableError,
    Synthesizer,
    Transcriber,
)
from trunkline.gateway.peers.hitl import (
    ApprovalRequest,
    EscalationRequest,
    HumanLoop,
    HumanLoopError,
    Line,
    TicketState,
    TicketUpdate,
)
from trunkline.gateway.peers.retry import RetryPolicy
from trunkline.gateway.peers.types import (
    CallInfo,
    ContextResult,
    LlmEvent,
    LlmRequest,
    Prefilled,
    StoredAnswer,
    TextDelta,
    Transcript,
    Usage,
)
from trunkline.gateway.records import CallSink, CallSummary, TurnRecord
from trunkline.gateway.transports.base import (
    AudioIn,
    Dtmf,
    Hangup,
    MarkEcho,
    Played,
    Transport,
    TransportEvent,
)
from trunkline.gateway.vad import SpeechDetector


class Outage:
    """Makes a fake peer fail while ``down`` (or for the next ``failures`` calls)."""

    def __init__(self) -> None:
        self.down = False
        self.failures = 0
        self.calls = 0

    def check(self) -> None:
        self.calls += 1
        if self.down:
            raise PeerUnavailableError("fake outage")
        if self.failures > 0:
            self.failures -= 1
            raise PeerUnavailableError("fake transient failure")


class FakeTranscriber(Transcriber):
    """Returns the text registered for the utterance's audio byte (its first voiced sample):
    a plain text is heard with confidence 1, a :class:`Transcript` as it is."""

    def __init__(
        self,
        env: PeerEnv,
        texts: Callable[[bytes], str | Transcript],
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(env, policy)
        self.texts = texts
        self.outage = Outage()
        self.seen: list[bytes] = []

    async def _transcribe(self, call: CallInfo, audio: bytes) -> Transcript:
        self.outage.check()
        self.seen.append(audio)
        heard = self.texts(audio)
        return heard if isinstance(heard, Transcript) else Transcript(heard)


class FakeContext(ContextSource):
    def __init__(self, env: PeerEnv, result: ContextResult | None = None) -> None:
        super().__init__(env)
        self.result = result or ContextResult()
        self.outage = Outage()
        self.queries: list[str] = []
        self.preferred: list[tuple[str, ...]] = []
        self.entities: list[dict[str, str]] = []
        self.stored: list[StoredAnswer] = []
        self.store_refused = False  # answer stored=false, as the service does for live data

    async def _resolve(
        self,
        call: CallInfo,
        query: str,
        entities: Mapping[str, str],
        prefer_first: tuple[str, ...] = (),
    ) -> ContextResult:
        self.outage.check()
        self.queries.append(query)
        self.entities.append(dict(entities))
        self.preferred.append(prefer_first)
        return self.result

    async def _store_answer(self, call: CallInfo, answer: StoredAnswer) -> bool:
        self.outage.check()
        self.stored.append(answer)
        return not (self.store_refused or answer.uses_live_data)


class FakeLanguageModel(LanguageModel):
    """Replies with ``reply(user_text)`` split into word deltas; can be held at a gate."""

    def __init__(
        self,
        env: PeerEnv,
        reply: Callable[[str], str],
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(env, policy)
        self.reply = reply
        self.outage = Outage()
        self.requests: list[LlmRequest] = []
        self.prefills: list[tuple[Message, ...]] = []
        self.prefill_contexts: list[ContextResult | None] = []
        self.prefill_partials: list[str] = []
        self.prefill_gate: asyncio.Event | None = None  # set: prefills wait for it
        self.prefill_waiting = 0
        self.prefill_cancelled = 0
        self.cancelled = 0
        self.gate: asyncio.Event | None = None

    async def _prefill(
        self,
        call: CallInfo,
        history: Sequence[Message],
        context: ContextResult | None,
        partial: str,
    ) -> Prefilled:
        self.outage.check()
        self.prefills.append(tuple(history))
        self.prefill_contexts.append(context)
        self.prefill_partials.append(partial)
        if self.prefill_gate is not None:
            self.prefill_waiting += 1
            try:
                await self.prefill_gate.wait()
            except asyncio.CancelledError:
                self.prefill_cancelled += 1
                raise
        return Prefilled(evaluated_tokens=10 * len(history), reused_tokens=0, completed=True)

    async def _generate(self, request: LlmRequest) -> AsyncIterator[LlmEvent]:
        self.outage.check()
        self.requests.append(request)
        try:
            words = self.reply(request.user_text).split(" ")
            for i, word in enumerate(words):
                if i == len(words) // 2 and self.gate is not None:
                    await self.gate.wait()
                yield TextDelta(word if i == 0 else " " + word)
            yield Usage(prompt_tokens=10, completion_tokens=len(words), prompt_compile_s=0.001)
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled += 1
            raise


class FakeSynthesizer(Synthesizer):
    """``frames_per_word`` 20 ms frames of a constant sample per word, in one chunk per word."""

    def __init__(
        self,
        env: PeerEnv,
        frames_per_word: int = 5,
        policy: RetryPolicy | None = None,
        sample_rate: int = 16000,
    ) -> None:
        super().__init__(env, policy)
        self.frames_per_word = frames_per_word
        self.sample_rate = sample_rate
        self.outage = Outage()
        self.texts: list[str] = []

    async def _synthesize(self, call: CallInfo, text: str) -> AsyncIterator[bytes]:
        self.outage.check()
        self.texts.append(text)
        for _ in text.split():
            yield b"\x10\x00" * (self.sample_rate // 50) * self.frames_per_word


class EnergyDetector(SpeechDetector):
    """Speech when any sample is louder than ``floor`` (fake audio: silence is near zero)."""

    def __init__(self, floor: int = 64) -> None:
        self.floor = floor

    def probability(self, pcm: bytes) -> float:
        samples = memoryview(pcm).cast("h")
        return 1.0 if max(map(abs, samples), default=0) > self.floor else 0.0


@dataclass
class RecordingSink(CallSink):
    events: list[tuple[str, object]] = field(default_factory=list)
    turns: list[TurnRecord] = field(default_factory=list)
    states: list[State] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def call_started(self, call: CallInfo, transport: str) -> None:
        self.events.append(("call.started", call))

    async def state_changed(self, call: CallInfo, state: State, history: list[Message]) -> None:
        self.states.append(state)

    async def turn_completed(self, record: TurnRecord) -> None:
        self.events.append(("turn.completed", record))
        self.turns.append(record)

    async def call_ended(self, summary: CallSummary) -> None:
        self.events.append(("call.ended", summary))
        self.ended.set()

    async def handoff_line(
        self, call: CallInfo, ticket_id: str, operator_id: str, line: Line, spoken_at: float
    ) -> None:
        self.events.append(("handoff.line", (ticket_id, operator_id, line, spoken_at)))


class FakeTransport(Transport):
    """A far end whose outbound clock is the caller's frames: each ``frame`` plays one frame
    (a ``Played`` tick after the caller's ``AudioIn``) and marks are echoed once played;
    ``tick`` plays one without a caller frame (a caller silent on the wire, as on WebRTC)."""

    name = "fake"

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._inbox: asyncio.Queue[TransportEvent] = asyncio.Queue()
        self._pending: list[bytes | str] = []  # unplayed frames and marks, in order
        self.played: list[bytes] = []
        self.sent_frames = 0
        self.marks: list[str] = []
        self.clears = 0
        self.closed = False
        self.audio_event = asyncio.Event()

    def frame(self, pcm: bytes) -> None:
        """One 20 ms tick: the caller's frame arrives and the far end plays one frame."""
        self._play_one()
        self._inbox.put_nowait(AudioIn(pcm, self._clock()))
        self._inbox.put_nowait(Played(1))

    def tick(self) -> None:
        """One 20 ms tick of the outbound clock with nothing from the caller."""
        self._play_one()
        self._inbox.put_nowait(Played(1))

    def hang_up(self) -> None:
        self._inbox.put_nowait(Hangup("caller hung up"))

    def press(self, digit: str) -> None:
        """The caller presses a key (a DTMF event, as Twilio, Plivo and LiveKit SIP send)."""
        self._inbox.put_nowait(Dtmf(digit, self._clock()))

    def _play_one(self) -> None:
        while self._pending and isinstance(self._pending[0], str):
            self._inbox.put_nowait(MarkEcho(str(self._pending.pop(0))))
        if self._pending:
            frame = self._pending.pop(0)
            assert isinstance(frame, bytes)
            self.played.append(frame)
        while self._pending and isinstance(self._pending[0], str):
            self._inbox.put_nowait(MarkEcho(str(self._pending.pop(0))))

    async def events(self) -> AsyncIterator[TransportEvent]:
        while True:
            event = await self._inbox.get()
            yield event
            if isinstance(event, Hangup):
                return

    async def send_audio(self, pcm: bytes) -> None:
        self.sent_frames += 1
        self._pending.append(pcm)
        self.audio_event.set()

    async def send_mark(self, name: str) -> None:
        self.marks.append(name)
        self._pending.append(name)

    async def clear(self) -> None:
        self.clears += 1
        self._pending = [item for item in self._pending if isinstance(item, str)]

    async def close(self) -> None:
        self.closed = True


class FakeHumanLoop(HumanLoop):
    """The hitl service in memory: tickets numbered ``t-1``, ``t-2``…; a test pushes each
    ticket's updates with ``update`` (``watch`` yields QUEUED first, then those)."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.escalations: list[EscalationRequest] = []
        self.approvals: list[ApprovalRequest] = []
        self.callbacks: list[tuple[str, bool, str]] = []
        self.cancelled: list[str] = []
        self.withdrawn: set[str] = set()  # cancelled for good: no callback can be put on them
        self._updates: dict[str, asyncio.Queue[TicketUpdate]] = {}
        self._tickets = 0

    def update(self, ticket_id: str, state: TicketState, **fields: Any) -> None:
        self._queue(ticket_id).put_nowait(TicketUpdate(ticket_id, state, **fields))

    def _queue(self, ticket_id: str) -> asyncio.Queue[TicketUpdate]:
        return self._updates.setdefault(ticket_id, asyncio.Queue())

    def _ticket(self) -> str:
        if self.fail:
            raise HumanLoopError("hitl: UNAVAILABLE (fake)")
        self._tickets += 1
        ticket = f"t-{self._tickets}"
        self._queue(ticket)
        return ticket

    async def escalate(self, call: CallInfo, request: EscalationRequest) -> str:
        ticket = self._ticket()
        self.escalations.append(request)
        return ticket

    async def request_approval(self, call: CallInfo, request: ApprovalRequest) -> str:
        ticket = self._ticket()
        self.approvals.append(request)
        return ticket

    async def watch(self, call: CallInfo, ticket_id: str) -> AsyncIterator[TicketUpdate]:
        yield TicketUpdate(ticket_id, TicketState.QUEUED)
        queue = self._queue(ticket_id)
        while True:
            update = await queue.get()
            yield update
            if update.state.terminal:
                return

    async def offer_callback(
        self, call: CallInfo, ticket_id: str, *, accepted: bool, number: str = ""
    ) -> None:
        if ticket_id in self.withdrawn:
            raise HumanLoopError(f"ticket {ticket_id} is cancelled", "FAILED_PRECONDITION")
        self.callbacks.append((ticket_id, accepted, number))

    async def cancel(self, call: CallInfo, ticket_id: str, reason: str) -> None:
        """As the service does: a ticket whose callback the caller accepted stays queued."""
        self.cancelled.append(ticket_id)
        offers = [accepted for t, accepted, _ in self.callbacks if t == ticket_id]
        if not (offers and offers[-1]):
            self.withdrawn.add(ticket_id)
