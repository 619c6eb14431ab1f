"""A caller reading a number out in groups (the pause's transcript ends in digits) is not cut
off at the group's pause: the turn machine holds that pause's endpoint (on a fake clock)."""

from __future__ import annotations

import pytest

from trunkline.gateway.core.endpointing import EndpointConfig
from trunkline.gateway.core.events import (
    Action,
    CancelWork,
    EndOfTurnVerdict,
    EndpointHeld,
    InboundFrame,
    PlayoutTick,
    StartWork,
    TranscriptReady,
    TurnCommitted,
)
from trunkline.gateway.core.numbers import number_in_progress, trailing_digits
from trunkline.gateway.core.playback import FRAME_BYTES
from trunkline.gateway.core.turns import SemanticEndConfig, TurnConfig, TurnMachine
from trunkline.testing.clock import FakeClock

pytestmark = pytest.mark.unit

VOICE = InboundFrame(b"\x01" * FRAME_BYTES, 0.9)
SILENCE = InboundFrame(b"\x00" * FRAME_BYTES, 0.05)
ENDPOINT = EndpointConfig(onset_frames=2, endpoint_ms=400, quiet_dbfs=None, loud_dbfs=None)
CONFIG = TurnConfig(endpoint=ENDPOINT, preroll_frames=2, number_hold_ms=1000)


@pytest.mark.parametrize(
    ("text", "digits"),
    [
        ("My card number is 4539.", 4),
        ("My card number is 4539,", 4),
        ("my card number is four five three nine", 4),
        ("It's 4539 1488,", 8),
        ("It's 4539 1488 0343 6467.", 16),  # a whole card: no hold
        ("My number is 555-0132.", 7),
        ("account double four seven", 2),
        ("I need a new one.", 0),
        ("Oh.", 0),
        ("Can I come at 3?", 1),
        ("It costs $150.", 0),
        ("See you at 10:30.", 0),
        ("Thank you.", 0),
        ("", 0),
    ],
)
def test_trailing_digits(text: str, digits: int) -> None:
    assert trailing_digits(text) == digits
    assert number_in_progress(text) == (digits if 3 <= digits < 16 else 0)


class Driver:
    def __init__(self, config: TurnConfig = CONFIG) -> None:
        self.m = TurnMachine(config)
        self.clock = FakeClock(100.0)

    def frames(self, frame: InboundFrame, n: int) -> list[Action]:
        out: list[Action] = []
        for _ in range(n):
            self.clock.advance(0.02)
            out += self.m.handle(frame, self.clock.now())
            out += self.m.handle(PlayoutTick(), self.clock.now())
        return out

    def event(self, event: TranscriptReady | EndOfTurnVerdict) -> list[Action]:
        return self.m.handle(event, self.clock.now())


def of(actions: list[Action], kind: type) -> list:  # type: ignore[type-arg]
    return [a for a in actions if isinstance(a, kind)]


def pause_with(d: Driver, heard: str) -> tuple[int, list[Action]]:
    """The caller speaks, pauses 100 ms, and the speculative transcript comes in."""
    d.frames(SILENCE, 3)
    d.frames(VOICE, 20)
    (start,) = of(d.frames(SILENCE, 5), StartWork)
    assert start.speculative
    return start.turn_id, d.event(TranscriptReady(start.turn_id, heard))


def test_a_pause_after_a_digit_group_waits_for_the_hold_not_the_endpoint() -> None:
    d = Driver()
    turn_id, actions = pause_with(d, "My card number is 4539,")
    assert of(actions, EndpointHeld) == [EndpointHeld(turn_id, 4, 1000)]
    # 400 ms of silence in all: the usual endpoint, but not for this pause
    assert not of(d.frames(SILENCE, 15), TurnCommitted)
    # the caller reads the next group: the speculative work goes, one utterance goes on
    resumed = d.frames(VOICE, 1)
    assert of(resumed, CancelWork)[0].turn_id == turn_id
    # its pause ends in a word: the usual 400 ms endpoint again
    turn2, actions = pause_with(d, "My card number is 4539 1488, thanks")
    assert not of(actions, EndpointHeld)
    committed = of(d.frames(SILENCE, 15), TurnCommitted)
    assert [c.turn_id for c in committed] == [turn2]


def test_a_held_pause_still_ends_at_the_hold() -> None:
    d = Driver()
    pause_with(d, "The account is 12345.")
    ends = [i for i in range(60) if of(d.frames(SILENCE, 1), TurnCommitted)]
    # 5 silent frames before the transcript, the hold is 1000 ms: 50 frames of silence in all
    assert ends == [44]


def test_a_pause_after_words_ends_at_the_endpoint() -> None:
    d = Driver()
    _, actions = pause_with(d, "When are you open on Saturday?")
    assert not of(actions, EndpointHeld)
    ends = [i for i in range(30) if of(d.frames(SILENCE, 1), TurnCommitted)]
    assert ends == [14]  # 5 + 15 frames: 400 ms


def test_a_transcript_after_the_endpoint_changes_nothing() -> None:
    d = Driver()
    d.frames(SILENCE, 3)
    d.frames(VOICE, 20)
    actions = d.frames(SILENCE, 20)
    (start,) = of(actions, StartWork)
    assert of(actions, TurnCommitted)
    assert not of(d.event(TranscriptReady(start.turn_id, "It is 4539 1488")), EndpointHeld)


def test_off_when_none() -> None:
    d = Driver(TurnConfig(endpoint=ENDPOINT, preroll_frames=2))
    _, actions = pause_with(d, "My card number is 4539,")
    assert not of(actions, EndpointHeld)
    assert of(d.frames(SILENCE, 15), TurnCommitted)


def test_a_complete_verdict_does_not_end_a_held_pause_early() -> None:
    semantic = SemanticEndConfig(after_ms=200, threshold=0.5)
    d = Driver(
        TurnConfig(endpoint=ENDPOINT, preroll_frames=2, semantic=semantic, number_hold_ms=1000)
    )
    d.frames(SILENCE, 3)
    d.frames(VOICE, 20)
    first = d.frames(SILENCE, 1)
    (start,) = of(first, StartWork)
    assert of(d.event(TranscriptReady(start.turn_id, "my card is 4539")), EndpointHeld)
    d.event(EndOfTurnVerdict(1, 0.99, 0.1))  # "complete"
    assert not of(d.frames(SILENCE, 30), TurnCommitted)  # 620 ms: neither 200 nor 400 ends it
    assert of(d.frames(SILENCE, 20), TurnCommitted)


def test_a_hold_must_be_longer_than_the_endpoint() -> None:
    with pytest.raises(ValueError, match="number_hold_ms"):
        TurnConfig(endpoint=ENDPOINT, number_hold_ms=400)


@pytest.mark.parametrize(
    ("text", "held"),
    [
        ("Please look up account number 441-729.", 0),  # the account's 6 digits: whole
        ("account four four one seven two nine", 0),
        ("Please look up account number 441,", 3),  # its first group: held
        ("It's 441-1729.", 7),  # one more than an account: still held
        ("My card number is 4539 1488,", 8),
    ],
)
def test_a_number_of_a_complete_length_is_not_in_progress(text: str, held: int) -> None:
    assert number_in_progress(text, frozenset({6})) == held


def test_a_whole_account_number_ends_at_the_endpoint_its_first_group_is_held() -> None:
    d = Driver(
        TurnConfig(
            endpoint=ENDPOINT,
            preroll_frames=2,
            number_hold_ms=1000,
            complete_number_lengths=frozenset({6}),
        )
    )
    turn_id, actions = pause_with(d, "Please look up account number 441,")
    assert of(actions, EndpointHeld) == [EndpointHeld(turn_id, 3, 1000)]
    assert not of(d.frames(SILENCE, 15), TurnCommitted)
    d.frames(VOICE, 1)
    turn2, actions = pause_with(d, "Please look up account number 441-729.")
    assert not of(actions, EndpointHeld)
    ends = [(i, c.turn_id) for i in range(30) for c in of(d.frames(SILENCE, 1), TurnCommitted)]
    assert ends == [(14, turn2)]  # 5 + 15 frames: the usual 400 ms
