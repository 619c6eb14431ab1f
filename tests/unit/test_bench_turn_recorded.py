"""``make bench-turn``'s recorded conversation: speaker turns from the transcript, audio cut."""

from __future__ import annotations

import pytest

from benchmarks.turn import recorded
from benchmarks.turn.recorded import Segment, SpeakerTurn

pytestmark = pytest.mark.unit

STM = """\
sample 1 A 1.0 1.5 Hello?
sample 1 B 2.0 2.4 Hi.
sample 1 B 2.5 3.0 Who is this?
;; a comment line
sample 1 A 3.2 4.0 It is me.
"""


def test_consecutive_segments_of_one_speaker_make_one_turn_ended_by_the_other() -> None:
    turns = recorded.speaker_turns(recorded.parse_stm(STM))
    assert [(t.speaker, t.text, t.next_start_s) for t in turns] == [
        ("A", "Hello?", 2.0),
        ("B", "Hi. Who is this?", 3.2),
        ("A", "It is me.", None),  # the recording ended: not a known end of turn
    ]
    assert (turns[1].start_s, turns[1].end_s) == (2.0, 3.0)


def test_segments_are_ordered_by_time() -> None:
    lines = "s 1 B 2.0 2.4 second\ns 1 A 1.0 1.5 first\n"
    assert [s.text for s in recorded.parse_stm(lines)] == ["first", "second"]


def test_a_short_stm_line_is_refused_with_its_number() -> None:
    with pytest.raises(ValueError, match="line 2"):
        recorded.parse_stm("s 1 A 1.0 1.5 ok\ns 1 A 2.0\n")


def test_turn_audio_is_cut_from_first_word_to_last() -> None:
    rate = recorded.RATE
    pcm = bytes(range(256)) * (rate * 2 * 3 // 256)  # 3 s, every byte position distinct mod 256
    turn = SpeakerTurn("A", (Segment("A", 1.0, 1.25, "x"), Segment("A", 1.5, 2.0, "y")), 2.5)
    cut = recorded.turn_audio(pcm, turn)
    assert len(cut) == rate * 2  # 1.0 s .. 2.0 s
    assert cut[:4] == pcm[rate * 2 : rate * 2 + 4]


def test_the_installed_sample_gives_finished_turns_with_audio() -> None:
    turns = recorded.recorded_turns()
    assert len(turns) == 8  # nine speaker turns; the last runs into the recording's end
    for turn, pcm in turns:
        assert turn.next_start_s is not None
        assert turn.next_start_s >= turn.end_s
        assert len(pcm) == pytest.approx((turn.end_s - turn.start_s) * recorded.RATE * 2, abs=4)
    speakers = {t.speaker for t, _ in turns}
    assert speakers == {"Diane", "Sheila"}
