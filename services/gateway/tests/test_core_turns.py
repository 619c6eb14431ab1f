from __future__ import annotations

from dataclasses import replace

import pytest

from trunkline.gateway.core.endpointing import EndpointConfig
from trunkline.gateway.core.events import (
    Action,
    CancelWork,
    ClearPlayback,
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
    TranscriptReady,
    TurnCommitted,
    TurnFinished,
    WorkDone,
)
from trunkline.gateway.core.playback import FRAME_BYTES
from trunkline.gateway.core.turns import TurnConfig, TurnMachine
from trunkline.testing.clock import FakeClock

pytestmark = pytest.mark.unit

VOICE = InboundFrame(b"\x01" * FRAME_BYTES, 0.9)
SILENCE = InboundFrame(b"\x00" * FRAME_BYTES, 0.05)
CONFIG = TurnConfig(
    endpoint=EndpointConfig(onset_frames=2, endpoint_ms=100),
    preroll_frames=2,
    lead_frames=2,
    filler_after_s=1.0,
    filler_repeat_s=3.0,
    mark_grace_frames=5,
)


class Driver:
    def __init__(self, machine: TurnMachine) -> None:
        self.m = machine
        self.clock = FakeClock(100.0)
        self.log: list[Action] = []

    def frames(self, frame: InboundFrame, n: int) -> list[Action]:
        out: list[Action] = []
        for _ in range(n):
            self.clock.advance(0.02)
            out += self.m.handle(frame, self.clock.now())
            out += self.m.handle(PlayoutTick(), self.clock.now())  # the transport's clock
        self.log += out
        return out

    def event(self, event: object) -> list[Action]:
        out = self.m.handle(event, self.clock.now())  # type: ignore[arg-type]
        self.log += out
        return out


def of(actions: list[Action], kind: type) -> list:  # type: ignore[type-arg]
    return [a for a in actions if isinstance(a, kind)]


def audio(frames: int) -> bytes:
    return b"\x07" * (FRAME_BYTES * frames)


def speak_and_pause(d: Driver) -> StartWork:
    d.frames(SILENCE, 3)
    d.frames(VOICE, 5)
    started = of(d.frames(SILENCE, 1), StartWork)
    assert len(started) == 1
    return started[0]  # type: ignore[no-any-return]


def test_greeting_plays_paced_with_marks_and_lands_in_history() -> None:
    d = Driver(TurnMachine(CONFIG))
    start = of(d.m.greet(d.clock.now()), StartWork)[0]
    assert start.greeting
    assert not start.speculative
    assert d.m.state is State.THINKING
    d.event(ReplyAudio(start.turn_id, 0, "Hello there.", audio(4), last=True))
    d.event(ReplyAudio(start.turn_id, 1, "How can I help?", audio(2), last=True))
    d.event(WorkDone(start.turn_id))
    first = d.frames(SILENCE, 1)
    assert len(of(first, SendAudio)) == 3  # lead (2) + the frame of this tick
    assert of(first, FirstAudio)[0].voice_to_voice_s is None
    assert d.m.state is State.SPEAKING
    second = d.frames(SILENCE, 1)
    assert [type(a) for a in second] == [SendAudio, SendMark]
    assert of(second, SendMark)[0].name == f"{start.turn_id}.0"
    rest = d.frames(SILENCE, 2)
    assert len(of(rest, SendAudio)) == 2
    assert of(rest, SendMark)[0].name == f"{start.turn_id}.1"
    assert not of(d.event(MarkPlayed(f"{start.turn_id}.0")), TurnFinished)
    done = of(d.event(MarkPlayed(f"{start.turn_id}.1")), TurnFinished)
    assert done[0].agent_text == "Hello there. How can I help?"
    assert not done[0].interrupted
    assert done[0].greeting
    assert d.m.history == [Message("agent", "Hello there. How can I help?")]
    assert d.m.state is State.LISTENING


def test_speculative_start_at_first_silent_frame_holds_audio_until_endpoint() -> None:
    d = Driver(TurnMachine(CONFIG))
    start = speak_and_pause(d)
    assert start.speculative
    assert len(start.audio) == FRAME_BYTES * (2 + 5 + 1)  # preroll + voice + first silent frame
    pause_time = d.clock.now()
    d.event(TranscriptReady(start.turn_id, "what are your hours"))
    d.event(ReplyAudio(start.turn_id, 0, "Nine to five.", audio(3), last=True))
    d.event(WorkDone(start.turn_id))
    held = d.frames(SILENCE, 3)
    assert not of(held, SendAudio)
    assert d.m.state is State.LISTENING
    endpoint = d.frames(SILENCE, 1)  # 5th silent frame = 100 ms
    assert of(endpoint, TurnCommitted)[0].last_voice_at == pytest.approx(pause_time)
    assert len(of(endpoint, SendAudio)) == 3
    assert of(endpoint, FirstAudio)[0].voice_to_voice_s == pytest.approx(0.08)
    d.frames(SILENCE, 1)
    finished = of(d.event(MarkPlayed(f"{start.turn_id}.0")), TurnFinished)
    assert finished[0].user_text == "what are your hours"
    assert finished[0].voice_to_voice_s == pytest.approx(0.08)
    assert d.m.history == [
        Message("user", "what are your hours"),
        Message("agent", "Nine to five."),
    ]


def test_speech_resuming_before_endpoint_cancels_and_restarts_with_longer_audio() -> None:
    d = Driver(TurnMachine(CONFIG))
    first = speak_and_pause(d)
    d.event(ReplyAudio(first.turn_id, 0, "stale", audio(2), last=True))
    resumed = d.frames(VOICE, 1)
    assert of(resumed, CancelWork) == [CancelWork(first.turn_id, "speech resumed")]
    d.frames(VOICE, 2)
    second = of(d.frames(SILENCE, 1), StartWork)[0]
    assert second.turn_id != first.turn_id
    assert len(second.audio) == FRAME_BYTES * (2 + 5 + 1 + 3 + 1)
    # Late events of the cancelled turn are ignored.
    d.event(ReplyAudio(first.turn_id, 1, "stale", audio(2), last=True))
    d.event(WorkDone(first.turn_id))
    out = d.frames(SILENCE, 4)
    assert of(out, TurnCommitted)
    assert not of(out, SendAudio)


def test_barge_in_stops_audio_on_the_onset_frame_and_keeps_only_what_was_heard() -> None:
    d = Driver(TurnMachine(CONFIG))
    start = speak_and_pause(d)
    d.event(TranscriptReady(start.turn_id, "tell me about plans"))
    d.event(ReplyAudio(start.turn_id, 0, "We have three plans.", audio(2), last=True))
    long_clause = "The basic plan costs ten dollars and includes everything you need"
    d.event(ReplyAudio(start.turn_id, 1, long_clause, audio(20), last=False))
    d.frames(SILENCE, 4)  # endpoint: playback starts
    d.frames(SILENCE, 8)
    d.event(MarkPlayed(f"{start.turn_id}.0"))
    d.frames(VOICE, 1)
    onset = d.frames(VOICE, 1)  # onset_frames = 2: speech starts on this frame
    assert ClearPlayback(start.turn_id) in onset
    assert CancelWork(start.turn_id, "barge-in") in onset
    assert not of(onset, SendAudio)
    finished = of(onset, TurnFinished)[0]
    assert finished.interrupted
    assert finished.agent_text.startswith("We have three plans. The basic")
    assert finished.agent_text != "We have three plans. " + long_clause
    assert d.m.state is State.LISTENING
    assert d.m.history[-1] == Message("agent", finished.agent_text, truncated=True)
    assert not of(d.frames(VOICE, 5), SendAudio)
    nxt = of(d.frames(SILENCE, 1), StartWork)[0]
    assert nxt.history[-2:] == (
        Message("user", "tell me about plans"),
        Message("agent", finished.agent_text, truncated=True),
    )


def test_filler_plays_when_the_reply_is_late_and_the_turn_still_completes() -> None:
    d = Driver(TurnMachine(CONFIG, filler_pcm=audio(3)))
    start = speak_and_pause(d)
    d.frames(SILENCE, 4)
    assert d.m.state is State.THINKING
    assert not of(d.frames(SILENCE, 45), FillerStarted)
    filler = d.frames(SILENCE, 10)
    assert len(of(filler, FillerStarted)) == 1
    assert of(filler, SendAudio)
    assert d.m.state is State.THINKING
    d.event(TranscriptReady(start.turn_id, "hello"))
    d.event(ReplyAudio(start.turn_id, 0, "Hi.", audio(1), last=True))
    d.event(WorkDone(start.turn_id))
    out = d.frames(SILENCE, 3)
    assert of(out, FirstAudio)
    assert d.m.state is State.SPEAKING
    d.event(MarkPlayed(f"{start.turn_id}.filler0"))
    finished = of(d.event(MarkPlayed(f"{start.turn_id}.0")), TurnFinished)[0]
    assert finished.fillers == 1
    assert finished.agent_text == "Hi."


@pytest.mark.parametrize("cut", [True, False])
def test_reply_audio_cuts_a_playing_filler_short(cut: bool) -> None:
    d = Driver(TurnMachine(replace(CONFIG, cut_filler_for_reply=cut), filler_pcm=audio(100)))
    start = speak_and_pause(d)
    d.frames(SILENCE, 4)  # the endpoint
    d.frames(SILENCE, 55)  # 1 s later the 2 s filler starts
    assert len(of(d.log, FillerStarted)) == 1
    d.frames(SILENCE, 5)
    d.event(ReplyAudio(start.turn_id, 0, "Hi there.", audio(2), last=True))
    out = d.frames(SILENCE, 3)
    # cut: the reply follows the filler frames already sent; else it waits out the filler
    assert bool(of(out, FirstAudio)) is cut


def test_filler_repeats_while_waiting() -> None:
    d = Driver(TurnMachine(CONFIG, filler_pcm=audio(1)))
    speak_and_pause(d)
    d.frames(SILENCE, 4)
    out = d.frames(SILENCE, 50 + 150 + 5)
    assert len(of(out, FillerStarted)) == 2


def test_empty_transcript_returns_to_listening_silently() -> None:
    d = Driver(TurnMachine(CONFIG))
    start = speak_and_pause(d)
    d.event(TranscriptReady(start.turn_id, ""))
    d.event(WorkDone(start.turn_id))
    out = d.frames(SILENCE, 4)
    assert not of(out, TurnFinished)
    assert not of(out, SendAudio)
    assert d.m.state is State.LISTENING
    assert d.m.active_turn_id is None


def test_caller_continuing_before_any_reply_merges_the_utterances() -> None:
    d = Driver(TurnMachine(CONFIG))
    first = speak_and_pause(d)
    d.frames(SILENCE, 4)
    assert d.m.state is State.THINKING
    out = d.frames(VOICE, 2)
    assert CancelWork(first.turn_id, "caller continued") in out
    assert d.m.state is State.LISTENING
    second = of(d.frames(SILENCE, 1), StartWork)[0]
    assert second.audio.startswith(first.audio)
    assert len(second.audio) > len(first.audio)


def test_missing_marks_end_the_turn_after_a_grace_period() -> None:
    d = Driver(TurnMachine(CONFIG))
    start = of(d.m.greet(d.clock.now()), StartWork)[0]
    d.event(ReplyAudio(start.turn_id, 0, "Hello.", audio(1), last=True))
    d.event(WorkDone(start.turn_id))
    out = d.frames(SILENCE, 8)
    assert of(out, TurnFinished)[0].agent_text == "Hello."


def test_hand_off_stops_everything() -> None:
    d = Driver(TurnMachine(CONFIG))
    start = of(d.m.greet(d.clock.now()), StartWork)[0]
    d.event(ReplyAudio(start.turn_id, 0, "Hello, one moment.", audio(10), last=True))
    d.frames(SILENCE, 2)
    out = d.event(HandOff())
    assert ClearPlayback(start.turn_id) in out
    assert CancelWork(start.turn_id, "call ended") in out
    assert d.m.state is State.HANDED_OFF
    assert d.frames(VOICE, 10) == []


def test_wrong_frame_size_is_refused() -> None:
    m = TurnMachine(CONFIG)
    with pytest.raises(ValueError, match="640 bytes"):
        m.handle(InboundFrame(b"\x00" * 10, 0.0), 0.0)


def test_speculation_can_wait_for_more_silence() -> None:
    d = Driver(TurnMachine(replace(CONFIG, speculate_after_ms=60)))
    d.frames(VOICE, 5)
    assert not of(d.frames(SILENCE, 2), StartWork)  # 40 ms of silence: not yet
    (start,) = of(d.frames(SILENCE, 1), StartWork)  # 60 ms
    assert start.speculative
    (committed,) = of(d.frames(SILENCE, 2), TurnCommitted)  # 100 ms: the endpoint
    assert committed.turn_id == start.turn_id


def test_a_pause_shorter_than_the_speculation_delay_starts_nothing() -> None:
    d = Driver(TurnMachine(replace(CONFIG, speculate_after_ms=60)))
    d.frames(VOICE, 5)
    d.frames(SILENCE, 2)
    assert not of(d.frames(VOICE, 3), StartWork)
    assert not of(d.log, CancelWork)


def test_without_speculation_the_work_starts_at_the_endpoint() -> None:
    d = Driver(TurnMachine(replace(CONFIG, speculate_after_ms=None)))
    d.frames(VOICE, 5)
    assert not of(d.frames(SILENCE, 4), StartWork)
    actions = d.frames(SILENCE, 1)
    (start,) = of(actions, StartWork)
    assert not start.speculative
    assert of(actions, TurnCommitted)[0].turn_id == start.turn_id


def test_resumed_speech_cancels_the_speculative_work_on_that_frame() -> None:
    d = Driver(TurnMachine(CONFIG))
    start = speak_and_pause(d)
    actions = d.frames(VOICE, 1)
    assert CancelWork(start.turn_id, "speech resumed") in actions


def test_speculation_must_come_before_the_endpoint() -> None:
    with pytest.raises(ValueError, match="speculate_after_ms"):
        replace(CONFIG, speculate_after_ms=100)


def test_a_long_utterance_is_read_ahead_every_so_much_speech() -> None:
    config = replace(CONFIG, prefetch_every_ms=200, prefetch_min_ms=300)
    d = Driver(TurnMachine(config))
    d.m.history.append(Message("agent", "Hi."))
    out = d.frames(VOICE, 2)  # onset
    out += d.frames(VOICE, 12)  # 280 ms of speech: under the minimum
    assert of(out, Prefetch) == []
    out = d.frames(VOICE, 1)  # 300 ms of speech
    [first] = of(out, Prefetch)
    assert first.history == (Message("agent", "Hi."),)
    assert len(first.audio) == 15 * FRAME_BYTES  # the utterance so far (no preroll: none yet)
    out = d.frames(VOICE, 9)
    assert of(out, Prefetch) == []
    out = d.frames(VOICE, 1)  # another 200 ms of speech
    [second] = of(out, Prefetch)
    assert len(second.audio) == 25 * FRAME_BYTES
    out = d.frames(SILENCE, 1)  # the pause: speculative work, no more read-aheads
    assert of(out, StartWork)
    assert of(d.frames(SILENCE, 3), Prefetch) == []


def test_no_read_ahead_while_a_turn_is_working_or_when_off() -> None:
    d = Driver(TurnMachine(replace(CONFIG, prefetch_every_ms=None)))
    assert of(d.frames(VOICE, 100), Prefetch) == []
    config = replace(CONFIG, prefetch_every_ms=100, prefetch_min_ms=100)
    d = Driver(TurnMachine(config))
    d.frames(VOICE, 4)
    d.frames(SILENCE, 6)  # endpoint: the turn is committed and working
    assert d.m.state is State.THINKING
    # the caller goes on before any reply: still one utterance, read ahead again
    out = d.frames(VOICE, 12)
    assert of(out, Prefetch)
    with pytest.raises(ValueError, match="prefetch_every_ms"):
        TurnConfig(prefetch_every_ms=10)


def test_a_barge_in_needs_fewer_voiced_frames_than_a_turn_start() -> None:
    config = replace(
        CONFIG, endpoint=EndpointConfig(onset_frames=3, barge_in_onset_frames=1, endpoint_ms=100)
    )
    d = Driver(TurnMachine(config))
    d.frames(VOICE, 3)  # a turn starts after three voiced frames
    start = of(d.frames(SILENCE, 1), StartWork)[0]
    d.event(TranscriptReady(start.turn_id, "hi"))
    d.event(ReplyAudio(start.turn_id, 0, "Hello there, how can I help?", audio(20), last=True))
    d.frames(SILENCE, 6)
    assert d.m.state is State.SPEAKING
    onset = d.frames(VOICE, 1)  # while the agent speaks, one is enough
    assert ClearPlayback(start.turn_id) in onset
