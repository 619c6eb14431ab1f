"""The turn machine with the semantic end-of-turn verdict as an event, on a fake clock."""

from __future__ import annotations

import pytest

from trunkline.gateway.core.endpointing import EndpointConfig
from trunkline.gateway.core.events import (
    Action,
    CancelWork,
    CheckEndOfTurn,
    EndOfTurnJudged,
    EndOfTurnVerdict,
    InboundFrame,
    PlayoutTick,
    StartWork,
    State,
    TurnCommitted,
    TurnDropped,
)
from trunkline.gateway.core.playback import FRAME_BYTES
from trunkline.gateway.core.turns import SemanticEndConfig, TurnConfig, TurnMachine
from trunkline.testing.clock import FakeClock

pytestmark = pytest.mark.unit

VOICE = InboundFrame(b"\x01" * FRAME_BYTES, 0.9)
SILENCE = InboundFrame(b"\x00" * FRAME_BYTES, 0.05)
SEMANTIC = SemanticEndConfig(after_ms=200, threshold=0.5)
CONFIG = TurnConfig(
    endpoint=EndpointConfig(onset_frames=2, endpoint_ms=600, quiet_dbfs=None, loud_dbfs=None),
    preroll_frames=2,
    semantic=SEMANTIC,
)


class Driver:
    def __init__(self, config: TurnConfig = CONFIG) -> None:
        self.m = TurnMachine(config)
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

    def verdict(self, check_id: int, probability: float) -> list[Action]:
        out = self.m.handle(EndOfTurnVerdict(check_id, probability, 0.12), self.clock.now())
        self.log += out
        return out


def of(actions: list[Action], kind: type) -> list:  # type: ignore[type-arg]
    return [a for a in actions if isinstance(a, kind)]


def speak_and_pause(d: Driver, voiced: int = 10) -> CheckEndOfTurn:
    d.frames(SILENCE, 3)
    d.frames(VOICE, voiced)
    first_silent = d.frames(SILENCE, 1)
    checks = of(first_silent, CheckEndOfTurn)
    assert len(checks) == 1, first_silent
    started = of(first_silent, StartWork)
    assert len(started) == 1
    assert started[0].speculative
    assert checks[0].turn_id == started[0].turn_id  # alongside the speculative start
    return checks[0]  # type: ignore[no-any-return]


def test_the_check_carries_the_utterance_padded_to_the_decision_time() -> None:
    d = Driver()
    check = speak_and_pause(d, voiced=10)
    # the preroll's two silent frames, the ten voiced ones, the first silent frame, and digital
    # silence for the 180 ms still missing to after_ms
    expected = SILENCE.pcm * 2 + VOICE.pcm * 10 + SILENCE.pcm + bytes(FRAME_BYTES * 9)
    assert check.audio == expected


def test_unpadded_check_is_what_was_heard() -> None:
    semantic = SemanticEndConfig(pad_silence=False)
    d = Driver(TurnConfig(endpoint=CONFIG.endpoint, preroll_frames=2, semantic=semantic))
    check = speak_and_pause(d, voiced=10)
    assert check.audio == SILENCE.pcm * 2 + VOICE.pcm * 10 + SILENCE.pcm


def test_complete_verdict_ends_the_turn_at_after_ms() -> None:
    d = Driver()
    check = speak_and_pause(d)
    paused_at = d.clock.now()
    judged = d.verdict(check.check_id, 0.9)  # the inference finished after 20 ms of silence
    assert of(judged, EndOfTurnJudged)[0].outcome == "complete"
    assert not of(judged, TurnCommitted)
    d.frames(SILENCE, 8)  # 180 ms of silence in all: not yet
    assert not of(d.log, TurnCommitted)
    committed = of(d.frames(SILENCE, 1), TurnCommitted)  # 200 ms
    assert len(committed) == 1
    assert committed[0].by == "semantic"
    assert committed[0].committed_at - paused_at == pytest.approx(0.18)
    assert committed[0].last_voice_at == pytest.approx(paused_at)
    assert committed[0].turn_id == check.turn_id
    assert d.m.state is State.THINKING


def test_a_late_complete_verdict_ends_the_turn_when_it_arrives() -> None:
    d = Driver()
    check = speak_and_pause(d)
    d.frames(SILENCE, 14)  # 300 ms of silence: past after_ms, before the 600 ms endpoint
    assert not of(d.log, TurnCommitted)
    out = d.verdict(check.check_id, 0.7)
    committed = of(out, TurnCommitted)
    assert len(committed) == 1
    assert committed[0].by == "semantic"
    assert committed[0].committed_at == d.clock.now()


def test_incomplete_verdict_waits_for_the_silence_endpoint() -> None:
    d = Driver()
    check = speak_and_pause(d)
    judged = d.verdict(check.check_id, 0.2)
    assert of(judged, EndOfTurnJudged)[0].outcome == "incomplete"
    d.frames(SILENCE, 28)  # 580 ms of silence
    assert not of(d.log, TurnCommitted)
    committed = of(d.frames(SILENCE, 1), TurnCommitted)  # 600 ms: the endpoint
    assert len(committed) == 1
    assert committed[0].by == "silence"


def test_threshold_is_the_agents() -> None:
    strict = TurnConfig(endpoint=CONFIG.endpoint, semantic=SemanticEndConfig(threshold=0.95))
    d = Driver(strict)
    d.frames(SILENCE, 3)
    d.frames(VOICE, 10)
    (check,) = of(d.frames(SILENCE, 1), CheckEndOfTurn)
    assert of(d.verdict(check.check_id, 0.9), EndOfTurnJudged)[0].outcome == "incomplete"


def test_speech_resuming_cancels_a_complete_verdict() -> None:
    d = Driver()
    check = speak_and_pause(d)
    d.verdict(check.check_id, 0.95)
    d.frames(SILENCE, 4)  # 100 ms: before after_ms
    resumed = d.frames(VOICE, 1)
    assert of(resumed, CancelWork)
    assert of(resumed, TurnDropped)
    d.frames(VOICE, 5)
    second = of(d.frames(SILENCE, 1), CheckEndOfTurn)
    assert len(second) == 1
    assert second[0].check_id != check.check_id
    d.frames(SILENCE, 20)  # 420 ms of silence: the old verdict must not end this pause
    assert not of(d.log, TurnCommitted)
    committed = of(d.frames(SILENCE, 9), TurnCommitted)
    assert len(committed) == 1
    assert committed[0].by == "silence"


def test_a_verdict_after_speech_resumed_is_stale() -> None:
    d = Driver()
    check = speak_and_pause(d)
    d.frames(VOICE, 3)  # the caller goes on before the inference finished
    out = d.verdict(check.check_id, 0.99)
    assert of(out, EndOfTurnJudged)[0].outcome == "stale"
    d.frames(SILENCE, 12)
    assert not of(d.log, TurnCommitted)


def test_a_verdict_after_the_endpoint_is_stale() -> None:
    d = Driver()
    check = speak_and_pause(d)
    d.frames(SILENCE, 29)
    assert of(d.log, TurnCommitted)[0].by == "silence"
    out = d.verdict(check.check_id, 0.99)
    assert [a.outcome for a in of(out, EndOfTurnJudged)] == ["stale"]
    assert not of(out, TurnCommitted)


def test_caller_continuing_after_a_semantic_end_makes_one_longer_utterance() -> None:
    """A false cut-off before any reply audio costs a redone turn, never lost words."""
    d = Driver()
    check = speak_and_pause(d)
    d.verdict(check.check_id, 0.9)
    d.frames(SILENCE, 9)
    assert [c.by for c in of(d.log, TurnCommitted)] == ["semantic"]
    out = d.frames(VOICE, 2)  # speech again (onset 2 frames)
    assert [a.reason for a in of(out, TurnDropped)] == ["caller continued"]
    d.frames(VOICE, 3)
    (check2,) = of(d.frames(SILENCE, 1), CheckEndOfTurn)
    assert len(check2.audio) > len(check.audio)  # the first part is kept in the utterance
    assert check2.audio.startswith(check.audio[: FRAME_BYTES * 10])


def test_off_by_default_and_no_checks() -> None:
    d = Driver(TurnConfig(endpoint=CONFIG.endpoint))
    d.frames(SILENCE, 3)
    d.frames(VOICE, 10)
    d.frames(SILENCE, 30)
    assert not of(d.log, CheckEndOfTurn)
    assert of(d.log, TurnCommitted)[0].by == "silence"
    assert of(d.m.handle(EndOfTurnVerdict(1, 0.99), d.clock.now()), EndOfTurnJudged)[0].outcome == (
        "stale"
    )


def test_no_check_before_min_speech_the_silence_endpoint_decides() -> None:
    semantic = SemanticEndConfig(min_speech_ms=300)
    d = Driver(TurnConfig(endpoint=CONFIG.endpoint, preroll_frames=2, semantic=semantic))
    d.frames(SILENCE, 3)
    d.frames(VOICE, 10)  # 200 ms of speech: an opening word
    first_silent = d.frames(SILENCE, 1)
    assert not of(first_silent, CheckEndOfTurn)
    assert of(first_silent, StartWork)  # the speculative start still goes
    d.frames(VOICE, 6)  # the caller goes on: 320 ms of speech in all
    (check,) = of(d.frames(SILENCE, 1), CheckEndOfTurn)
    d.verdict(check.check_id, 0.9)
    d.frames(SILENCE, 9)
    assert [c.by for c in of(d.log, TurnCommitted)] == ["semantic"]


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="below endpoint_ms"):
        TurnConfig(endpoint=EndpointConfig(endpoint_ms=200), semantic=SemanticEndConfig(200))
    with pytest.raises(ValueError, match="threshold"):
        SemanticEndConfig(threshold=0.0)
    with pytest.raises(ValueError, match="after_ms"):
        SemanticEndConfig(after_ms=0)
    with pytest.raises(ValueError, match="min_speech_ms"):
        SemanticEndConfig(min_speech_ms=-20)
