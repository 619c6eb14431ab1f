"""The turn state machine: listening → thinking → speaking (→ handed-off), driven by events.

Speculative start: after ``speculate_after_ms`` of silence (default: the caller's first silent
frame) the turn's work starts (STT final, context, LLM, TTS); if speech resumes before the
endpoint the work is cancelled at once and the utterance goes on. ``speculate_after_ms=None``
turns speculation off: the work starts at the endpoint.
Prefetch: while the caller speaks, every ``prefetch_every_ms`` of speech (once the utterance has
``prefetch_min_ms``) the machine asks for the utterance so far to be read ahead (STT, context,
LLM prefill), so that at the pause the prompt is mostly evaluated already; None turns it off.
Reply audio is held until the endpoint commits the turn, then released in step with the transport's
outbound clock (``PlayoutTick``), never with the caller's frames: a transport that sends nothing
while the caller is silent (WebRTC, LiveKit) still gets the reply on time. Barge-in: caller speech
onset while the agent speaks stops outbound audio on that very frame, clears the transport, cancels
the work and keeps only what the caller heard in the history. When the committed turn has produced
no audio after ``filler_after_s`` the pre-rendered filler plays (again every ``filler_repeat_s``);
reply audio that arrives meanwhile cuts the rest of the filler, so the answer never waits behind it.
Semantic end of turn (``semantic``; None: off): at the caller's first silent frame the machine
asks whether the utterance so far is a complete turn (``CheckEndOfTurn``, answered by an
``EndOfTurnVerdict`` event, alongside the speculative start); a verdict at or above
``threshold`` ends the turn once ``after_ms`` of silence has passed (or at once if the verdict
comes later) instead of at the silence endpoint, which stays the fallback and hard maximum. A
verdict that comes after the caller spoke again or after the endpoint is ignored (``stale``).
Numbers read out (``number_hold_ms``; None: off): when the speculative transcript of a pause ends
in a number of 3 to 15 digits (``core/numbers.py``: "my card number is 4539,") the caller
is probably reading out the next group, so that pause ends the turn at ``number_hold_ms`` of
silence instead of the endpoint (``EndpointHeld``), and no semantic verdict ends it early; a run
of one of ``complete_number_lengths`` (the agent's account numbers) is whole and not held. A
transcript that comes after the endpoint changes nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from trunkline.gateway.core.endpointing import FRAME_MS, EndpointConfig, Endpointer, Phase, Signal
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
    Message,
    PlayoutTick,
    Prefetch,
    ReplyAudio,
    SendAudio,
    SendMark,
    StartWork,
    State,
    StateChanged,
    TranscriptReady,
    TurnCommitted,
    TurnDropped,
    TurnFinished,
    WorkDone,
)
from trunkline.gateway.core.numbers import number_in_progress
from trunkline.gateway.core.playback import FRAME_BYTES, Playback


@dataclass(frozen=True, slots=True)
class SemanticEndConfig:
    """Semantic end of turn: a verdict >= ``threshold`` ends the turn after ``after_ms`` of
    silence (at the earliest) instead of the silence endpoint. ``pad_silence``: the audio to
    judge is padded with silence up to ``after_ms``, so the model sees the pause as it will be
    when the verdict can act (it judges a pause by its silence too: on the benchmark's complete
    questions 15 of 16 scored complete padded, 6 of 16 as heard at the first silent frame); the
    verdict only acts if the caller really stays silent that long. ``min_speech_ms``: no check
    until the utterance has that much speech, so a pause after an opening word ("Oh," "Sorry,"
    "Actually,") waits for the silence endpoint (the model scored those complete on recorded and
    synthetic speech alike, ``make bench-turn``)."""

    after_ms: int = 200
    threshold: float = 0.5
    pad_silence: bool = True
    min_speech_ms: int = 0

    def __post_init__(self) -> None:
        if self.after_ms < FRAME_MS:
            raise ValueError(f"semantic after_ms must be >= {FRAME_MS} (got {self.after_ms})")
        if self.min_speech_ms < 0:
            raise ValueError(f"semantic min_speech_ms must be >= 0 (got {self.min_speech_ms})")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"semantic threshold must be in (0, 1] (got {self.threshold})")


@dataclass(frozen=True, slots=True)
class TurnConfig:
    endpoint: EndpointConfig = field(default_factory=EndpointConfig)
    speculate_after_ms: int | None = FRAME_MS  # silence before speculative work; None: off
    prefetch_every_ms: int | None = 400  # speech between read-aheads of the utterance; None: off
    prefetch_min_ms: int = 400  # utterance length before the first read-ahead
    preroll_frames: int = 10  # audio kept from before the speech onset (200 ms)
    lead_frames: int = 3  # frames sent ahead of real time to the transport
    filler_after_s: float = 1.5
    filler_repeat_s: float = 5.0
    cut_filler_for_reply: bool = True  # reply audio stops the rest of a playing filler
    mark_grace_frames: int = 50  # without marks, a turn ends 1 s after its audio should have played
    max_history: int = 40
    semantic: SemanticEndConfig | None = None  # semantic end of turn; None: silence alone
    number_hold_ms: int | None = None  # a pause after a number read out; None: the endpoint
    complete_number_lengths: frozenset[int] = frozenset()  # runs of these lengths are not held

    def __post_init__(self) -> None:
        if self.number_hold_ms is not None and self.number_hold_ms <= self.endpoint.endpoint_ms:
            raise ValueError(
                f"number_hold_ms must be None or above endpoint_ms (got {self.number_hold_ms}, "
                f"endpoint_ms {self.endpoint.endpoint_ms})"
            )
        if self.prefetch_every_ms is not None and self.prefetch_every_ms < FRAME_MS:
            raise ValueError(f"prefetch_every_ms must be None or >= {FRAME_MS}")
        if self.speculate_after_ms is not None and not (
            FRAME_MS <= self.speculate_after_ms < self.endpoint.endpoint_ms
        ):
            raise ValueError(
                f"speculate_after_ms must be None or in [{FRAME_MS}, endpoint_ms) "
                f"(got {self.speculate_after_ms}, endpoint_ms {self.endpoint.endpoint_ms})"
            )
        if self.semantic is not None and self.semantic.after_ms >= self.endpoint.endpoint_ms:
            raise ValueError(
                f"semantic after_ms must be below endpoint_ms (got {self.semantic.after_ms}, "
                f"endpoint_ms {self.endpoint.endpoint_ms})"
            )


@dataclass(slots=True)
class _Turn:
    id: int
    audio: bytes
    greeting: bool = False
    committed: bool = False
    last_voice_at: float | None = None
    waiting_since: float | None = None
    transcript: str | None = None
    work_done: bool = False
    first_audio_sent: bool = False
    voice_to_voice_s: float | None = None
    fillers: int = 0
    playback: Playback = field(default_factory=Playback)
    grace_ticks: int = 0


class TurnMachine:
    """One call's conversation state. ``handle`` returns the actions for the shell to carry out."""

    def __init__(
        self,
        config: TurnConfig | None = None,
        filler_pcm: bytes = b"",
        out_frame_bytes: int = FRAME_BYTES,
    ) -> None:
        """``out_frame_bytes``: one 20 ms frame of reply audio at the transport's output rate
        (640 at 16 kHz, 320 at 8 kHz); reply and filler audio come at that rate."""
        self.config = config or TurnConfig()
        self.out_frame_bytes = out_frame_bytes
        self.state = State.LISTENING
        self.history: list[Message] = []
        self.filler_pcm = filler_pcm
        self._endpointer = Endpointer(self.config.endpoint)
        # The preroll also holds the voiced frames that led up to the onset decision.
        onset = self.config.endpoint.onset_frames
        self._preroll: deque[bytes] = deque(maxlen=self.config.preroll_frames + onset - 1)
        self._utterance = bytearray()
        self._turn: _Turn | None = None
        self._next_id = 0
        self._pause_at: float | None = None
        self._prefetched_at_ms = 0  # the utterance's speech_ms at its last read-ahead
        self._check_id = 0
        self._pending_check: int | None = None  # the check of this pause, until judged
        self._check_turn: int | None = None  # the speculative turn of that pause
        self._complete = False  # this pause's verdict said "complete"
        self._last_reply = ""  # the whole text of the last reply that played (not only heard)

    # ---- public ---------------------------------------------------------------------------

    @property
    def active_turn_id(self) -> int | None:
        return None if self._turn is None else self._turn.id

    def greet(self, now: float) -> list[Action]:
        """Start the greeting turn (committed at once)."""
        if self._turn is not None or self.state is State.HANDED_OFF:
            return []
        turn = self._new_turn(b"", greeting=True)
        turn.committed = True
        turn.waiting_since = now
        turn.transcript = ""
        actions: list[Action] = [
            StartWork(turn.id, b"", tuple(self.history), speculative=False, greeting=True)
        ]
        self._set_state(State.THINKING, actions)
        return actions

    @property
    def last_reply(self) -> str:
        """What the agent is saying now, else the whole of its last reply (a keypad
        ``repeat``)."""
        turn = self._turn
        if turn is not None and turn.first_audio_sent and turn.playback.full_text():
            return turn.playback.full_text()
        return self._last_reply

    def interject(self, line: str, now: float) -> list[Action]:
        """Say ``line`` at once (a keypad menu's): a reply playing stops as on a barge-in, a
        turn not yet answered and the caller's unfinished utterance are dropped, and a
        committed turn speaks the line."""
        actions: list[Action] = []
        if self.state is State.HANDED_OFF or not line:
            return actions
        turn = self._turn
        if turn is not None and turn.committed and turn.first_audio_sent:
            self._barge_in(turn, actions)
        elif turn is not None:
            if not turn.work_done:
                actions.append(CancelWork(turn.id, "keypress"))
            if turn.playback.sent_frames:
                actions.append(ClearPlayback(turn.id))
            actions.append(TurnDropped(turn.id, "keypress"))
            self._turn = None
        self._endpointer.reset()
        self._utterance = bytearray()
        self._preroll.clear()
        self._pause_at = None
        self._forget_check()
        said = self._new_turn(b"")
        said.committed = True
        said.waiting_since = now
        said.transcript = ""
        actions.append(StartWork(said.id, b"", tuple(self.history), speculative=False, line=line))
        self._set_state(State.THINKING, actions)
        return actions

    def handle(self, event: Event, now: float) -> list[Action]:
        actions: list[Action] = []
        if self.state is State.HANDED_OFF:
            return actions
        match event:
            case InboundFrame():
                self._on_frame(event, now, actions)
            case TranscriptReady(turn_id=tid, text=text):
                if self._is_current(tid):
                    assert self._turn is not None
                    self._turn.transcript = text.strip()
                    self._maybe_hold(self._turn, actions)
            case ReplyAudio():
                self._on_audio(event)
            case WorkDone(turn_id=tid):
                if self._is_current(tid):
                    assert self._turn is not None
                    self._turn.work_done = True
                    self._maybe_finish(actions)
            case MarkPlayed(name=name):
                if self._turn is not None and self._turn.playback.mark_played(name):
                    self._maybe_finish(actions)
            case HandOff():
                self._hand_off(actions)
            case EndOfTurnVerdict():
                self._on_verdict(event, now, actions)
            case PlayoutTick(frames=frames):
                for _ in range(frames):
                    self._tick(now, actions)
        return actions

    def take_back(self, messages: Sequence[Message]) -> list[Action]:
        """The agent gets the call back from a person: what was said meanwhile joins the
        history, and it listens afresh (nothing heard while handed off is a turn)."""
        actions: list[Action] = []
        if self.state is not State.HANDED_OFF:
            return actions
        self.history.extend(messages)
        del self.history[: -self.config.max_history]
        self._endpointer.reset()
        self._utterance = bytearray()
        self._preroll.clear()
        self._pause_at = None
        self._forget_check()
        self._set_state(State.LISTENING, actions)
        return actions

    def end(self) -> list[Action]:
        """The call ended: cancel work; a reply being spoken is recorded as far as it was heard."""
        actions: list[Action] = []
        turn = self._turn
        if turn is not None:
            if not turn.work_done:
                actions.append(CancelWork(turn.id, "call ended"))
            if turn.first_audio_sent:
                self._finish(turn, interrupted=True, actions=actions)
            else:
                actions.append(TurnDropped(turn.id, "call ended"))
            self._turn = None
        return actions

    # ---- frames ---------------------------------------------------------------------------

    def _on_frame(self, frame: InboundFrame, now: float, actions: list[Action]) -> None:
        if len(frame.pcm) != FRAME_BYTES:
            raise ValueError(f"inbound frame must be {FRAME_BYTES} bytes, got {len(frame.pcm)}")
        signal = self._endpointer.push(
            frame.probability,
            level_dbfs=frame.level_dbfs,
            agent_speaking=self.state is State.SPEAKING,
        )
        if signal is Signal.SPEECH_START:
            self._on_speech_start(frame, actions)
        elif self._endpointer.phase is not Phase.SILENCE or signal is Signal.ENDPOINT:
            self._utterance += frame.pcm
        else:
            self._preroll.append(frame.pcm)

        if signal is Signal.SPEECH_START:
            self._prefetched_at_ms = 0
        elif self._endpointer.phase is Phase.SPEECH and signal is Signal.NONE:
            self._maybe_prefetch(actions)
        if signal is Signal.PAUSE:
            self._pause_at = now
        if signal in (Signal.PAUSE, Signal.NONE) and self._should_speculate():
            self._start_work(speculative=True, actions=actions)
        if signal is Signal.PAUSE:
            self._check_end_of_turn(actions)
        if signal is Signal.RESUME:
            self._forget_check()
            if self._turn is not None and not self._turn.committed:
                actions.append(CancelWork(self._turn.id, "speech resumed"))
                actions.append(TurnDropped(self._turn.id, "speech resumed"))
                self._turn = None
            self._pause_at = None
        elif signal is Signal.ENDPOINT:
            self._forget_check()
            self._commit(now, actions)
        elif self._semantic_end_due():
            self._end_early(now, actions)

    def _maybe_prefetch(self, actions: list[Action]) -> None:
        every = self.config.prefetch_every_ms
        speech_ms = self._endpointer.speech_ms
        if every is None or self._turn is not None or speech_ms < self.config.prefetch_min_ms:
            return
        if speech_ms - self._prefetched_at_ms < every:
            return
        self._prefetched_at_ms = speech_ms
        actions.append(Prefetch(bytes(self._utterance), tuple(self.history)))

    # ---- semantic end of turn ------------------------------------------------------------

    def _check_end_of_turn(self, actions: list[Action]) -> None:
        if self.config.semantic is None:
            return
        if self._endpointer.speech_ms < self.config.semantic.min_speech_ms:
            return
        self._check_id += 1
        self._pending_check = self._check_id
        self._complete = False
        turn = self._turn
        self._check_turn = turn.id if turn is not None and not turn.committed else None
        audio = bytes(self._utterance)
        if self.config.semantic.pad_silence:
            missing = self.config.semantic.after_ms - self._endpointer.silence_ms
            audio += bytes(max(0, missing) // FRAME_MS * FRAME_BYTES)
        actions.append(CheckEndOfTurn(self._check_id, audio, self._check_turn))

    def _forget_check(self) -> None:
        self._pending_check = None
        self._check_turn = None
        self._complete = False

    def _on_verdict(self, verdict: EndOfTurnVerdict, now: float, actions: list[Action]) -> None:
        semantic = self.config.semantic
        current = (
            semantic is not None
            and verdict.check_id == self._pending_check
            and not self._complete
            and self._endpointer.phase is Phase.PAUSE
        )
        outcome: Literal["complete", "incomplete", "stale"] = "stale"
        turn_id = self._check_turn if current else None
        if current:
            assert semantic is not None
            if verdict.probability >= semantic.threshold:
                outcome = "complete"
                self._complete = True
            else:
                outcome = "incomplete"
                self._forget_check()
        judged = EndOfTurnJudged(
            verdict.check_id, turn_id, verdict.probability, verdict.inference_s, outcome
        )
        actions.append(judged)
        if self._semantic_end_due():
            self._end_early(now, actions)

    def _maybe_hold(self, turn: _Turn, actions: list[Action]) -> None:
        hold = self.config.number_hold_ms
        if hold is None or turn.committed or self._endpointer.phase is not Phase.PAUSE:
            return
        digits = number_in_progress(turn.transcript or "", self.config.complete_number_lengths)
        if digits and not self._endpointer.held:
            self._endpointer.hold(hold)
            actions.append(EndpointHeld(turn.id, digits, hold))

    def _semantic_end_due(self) -> bool:
        semantic = self.config.semantic
        return (
            semantic is not None
            and not self._endpointer.held
            and self._complete
            and self._endpointer.phase is Phase.PAUSE
            and self._endpointer.silence_ms >= semantic.after_ms
        )

    def _end_early(self, now: float, actions: list[Action]) -> None:
        self._forget_check()
        self._endpointer.reset()
        self._commit(now, actions, by="semantic")

    def _should_speculate(self) -> bool:
        after = self.config.speculate_after_ms
        return (
            after is not None
            and self._turn is None
            and self._endpointer.phase is Phase.PAUSE
            and self._endpointer.silence_ms >= after
        )

    def _on_speech_start(self, frame: InboundFrame, actions: list[Action]) -> None:
        turn = self._turn
        self._utterance = bytearray(b"".join(self._preroll))
        self._preroll.clear()
        if turn is not None and turn.committed:
            if turn.first_audio_sent:
                self._barge_in(turn, actions)
            else:
                # The caller goes on before any reply was heard: one longer utterance.
                if not turn.work_done:
                    actions.append(CancelWork(turn.id, "caller continued"))
                if turn.playback.sent_frames:
                    actions.append(ClearPlayback(turn.id))
                actions.append(TurnDropped(turn.id, "caller continued"))
                self._utterance = bytearray(turn.audio) + self._utterance
                self._turn = None
                self._set_state(State.LISTENING, actions)
        self._utterance += frame.pcm

    def _barge_in(self, turn: _Turn, actions: list[Action]) -> None:
        actions.append(ClearPlayback(turn.id))
        if not turn.work_done:
            actions.append(CancelWork(turn.id, "barge-in"))
        self._finish(turn, interrupted=True, actions=actions)

    def _start_work(self, *, speculative: bool, actions: list[Action]) -> None:
        if self._turn is not None and self._turn.committed:
            return
        turn = self._new_turn(bytes(self._utterance))
        actions.append(StartWork(turn.id, turn.audio, tuple(self.history), speculative))

    def _commit(
        self, now: float, actions: list[Action], by: Literal["silence", "semantic"] = "silence"
    ) -> None:
        if self._turn is None:
            self._start_work(speculative=False, actions=actions)
        turn = self._turn
        assert turn is not None
        turn.committed = True
        turn.last_voice_at = self._pause_at if self._pause_at is not None else now
        turn.waiting_since = now
        self._utterance = bytearray()
        self._pause_at = None
        actions.append(TurnCommitted(turn.id, turn.last_voice_at, now, by))
        self._set_state(State.THINKING, actions)
        self._maybe_finish(actions)

    # ---- outbound -------------------------------------------------------------------------

    def _on_audio(self, audio: ReplyAudio) -> None:
        if not self._is_current(audio.turn_id):
            return
        assert self._turn is not None
        if not audio.pcm and not audio.last:
            return
        playback = self._turn.playback
        if audio.pcm and self.config.cut_filler_for_reply:
            playback.cut_fillers()  # else the reply would wait for the whole filler to play
        seg = playback.segment(f"{audio.turn_id}.{audio.clause}", audio.text)
        if seg.complete:
            return
        seg.pcm += audio.pcm
        seg.complete = audio.last

    def _tick(self, now: float, actions: list[Action]) -> None:
        turn = self._turn
        if turn is None or not turn.committed:
            return
        playback = turn.playback
        self._maybe_filler(turn, now, actions)
        before = playback.reply_frames_sent
        for item in playback.tick().items:
            actions.append(SendAudio(item) if isinstance(item, bytes) else SendMark(item))
        if before == 0 and playback.reply_frames_sent > 0:
            turn.first_audio_sent = True
            if turn.last_voice_at is not None:
                turn.voice_to_voice_s = now - turn.last_voice_at
            actions.append(FirstAudio(turn.id, turn.voice_to_voice_s))
            self._set_state(State.SPEAKING, actions)
        if turn.work_done and playback.idle and not playback.all_marks_played:
            turn.grace_ticks += 1
        self._maybe_finish(actions)

    def _maybe_filler(self, turn: _Turn, now: float, actions: list[Action]) -> None:
        playback = turn.playback
        if turn.work_done or not self.filler_pcm or turn.waiting_since is None:
            return
        if turn.first_audio_sent or not playback.idle:
            return
        delay = self.config.filler_after_s if turn.fillers == 0 else self.config.filler_repeat_s
        waited = now - turn.waiting_since
        if waited < delay:
            return
        seg = playback.segment(f"{turn.id}.filler{turn.fillers}", "", filler=True)
        seg.pcm += self.filler_pcm
        seg.complete = True
        turn.fillers += 1
        turn.waiting_since = now
        actions.append(FillerStarted(turn.id, waited))

    def _maybe_finish(self, actions: list[Action]) -> None:
        turn = self._turn
        if turn is None or not turn.committed or not turn.work_done:
            return
        playback = turn.playback
        if not playback.idle:
            return
        if not playback.all_marks_played and turn.grace_ticks < self.config.mark_grace_frames:
            return
        if turn.first_audio_sent:
            self._finish(turn, interrupted=False, actions=actions)
        else:
            actions.append(TurnDropped(turn.id, "nothing to say"))
            self._turn = None  # no speech recognised, or no reply
            self._set_state(State.LISTENING, actions)

    def _finish(self, turn: _Turn, *, interrupted: bool, actions: list[Action]) -> None:
        heard = turn.playback.heard_text() if interrupted else turn.playback.full_text()
        self._last_reply = turn.playback.full_text() or self._last_reply
        user = turn.transcript or ""
        if user:
            self.history.append(Message("user", user))
        if heard:
            self.history.append(Message("agent", heard, truncated=interrupted))
        del self.history[: -self.config.max_history]
        actions.append(
            TurnFinished(
                turn_id=turn.id,
                user_text=user,
                agent_text=heard,
                interrupted=interrupted,
                greeting=turn.greeting,
                voice_to_voice_s=turn.voice_to_voice_s,
                fillers=turn.fillers,
            )
        )
        self._turn = None
        self._set_state(State.LISTENING, actions)

    # ---- helpers --------------------------------------------------------------------------

    def _hand_off(self, actions: list[Action]) -> None:
        turn = self._turn
        if turn is not None:
            if turn.playback.sent_frames:
                actions.append(ClearPlayback(turn.id))
            actions.extend(self.end())
        self._set_state(State.HANDED_OFF, actions)

    def _new_turn(self, audio: bytes, *, greeting: bool = False) -> _Turn:
        self._next_id += 1
        turn = _Turn(self._next_id, audio, greeting=greeting)
        turn.playback = Playback(self.config.lead_frames, self.out_frame_bytes)
        self._turn = turn
        return turn

    def _is_current(self, turn_id: int) -> bool:
        return self._turn is not None and self._turn.id == turn_id

    def _set_state(self, new: State, actions: list[Action]) -> None:
        if new is not self.state:
            actions.append(StateChanged(self.state, new))
            self.state = new
