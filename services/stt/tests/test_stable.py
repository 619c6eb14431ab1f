"""The stable prefix of incremental recognition: words two reads agree on settle at a pause."""

from __future__ import annotations

import numpy as np
import pytest

from trunkline.stt.core.stable import StablePrefix, Word, attach_punctuation, drop_overlap
from trunkline.stt.core.windows import quiet_point

pytestmark = pytest.mark.unit


def words(*spec: tuple[str, float, float]) -> list[Word]:
    return [Word(text, start, end) for text, start, end in spec]


FIRST = words((" Hi", 0.0, 0.3), (",", 0.3, 0.5), (" I'm", 0.5, 0.8), (" calling", 0.8, 1.2))
SECOND = [*FIRST, *words((" about", 1.2, 1.5), (" my", 1.5, 1.7), (" crown", 1.7, 2.1))]


def test_words_two_reads_agree_on_settle_at_a_pause_before_the_next_word() -> None:
    stable = StablePrefix(guard_s=0.5)
    assert stable.read(FIRST, 1.2) == 0  # a first read has nothing to agree with
    settled = stable.read(SECOND, 2.2, avg_logprob=-0.2)
    # "Hi," "I'm" "calling" agree; "calling" needs "about" (1.2 <= 2.2 - 0.5) after it
    assert settled == 3
    assert stable.text == "Hi, I'm calling"
    assert stable.until_s == pytest.approx(1.2)
    assert stable.avg_logprob() == pytest.approx(-0.2)
    assert stable.tail_text(["about", "my", "crown."]) == "Hi, I'm calling about my crown."


def test_a_word_still_being_spoken_or_without_a_pause_after_it_is_not_settled() -> None:
    near_end = StablePrefix(guard_s=0.5)
    near_end.read(FIRST, 1.2)
    # the word after "calling" starts 0.3 s before the end of the audio: too close
    assert near_end.read([*FIRST, Word(" about", 1.2, 1.4)], 1.5) == 2  # up to "I'm" only
    assert near_end.text == "Hi, I'm"
    no_pause = StablePrefix(guard_s=0.5)
    no_pause.read(FIRST, 1.2)
    assert no_pause.read(SECOND, 2.2, gap=lambda at: None) == 0
    assert (no_pause.text, no_pause.until_s) == ("", 0.0)


def test_reads_that_disagree_settle_nothing() -> None:
    stable = StablePrefix()
    stable.read(words((" high", 0.0, 0.3), (" I", 0.5, 0.8), (" am", 0.8, 1.0)), 2.0)
    assert stable.read(SECOND, 2.2) == 0


def test_the_next_decode_starts_at_the_latest_cut_leaving_enough_audio() -> None:
    stable = StablePrefix(guard_s=0.2)
    stable.read(FIRST, 1.2)
    stable.read(SECOND, 2.2)  # settles "Hi, I'm calling" (cut at 1.2)
    again = [*SECOND[4:], Word(" tooth", 2.1, 2.4)]  # a read of the audio after the cut
    stable.read(again, 2.6)  # settles "about my crown" (cut at 2.1)
    assert stable.text == "Hi, I'm calling about my crown"
    assert stable.decode_from(2.8, min_tail_s=0.5) == (6, pytest.approx(2.1))
    assert stable.decode_from(2.8, min_tail_s=1.5) == (3, pytest.approx(1.2))
    assert stable.decode_from(2.8, min_tail_s=3.0) == (0, 0.0)  # no cut that early
    # a decode from the earlier cut hears "about my crown tooth" again: the seam is clean
    assert stable.tail_text(["about", "my", "crown", "tooth."], 3) == (
        "Hi, I'm calling about my crown tooth."
    )


def test_punctuation_joins_its_word_and_a_repeated_word_at_the_seam_is_dropped() -> None:
    assert [w.text for w in attach_punctuation(FIRST)] == [" Hi,", " I'm", " calling"]
    assert drop_overlap(["last", "night"], ["night", "and", "I"]) == ["and", "I"]
    assert drop_overlap(["last", "night"], ["and", "I"]) == ["and", "I"]


def test_a_cut_goes_to_a_real_pause_not_a_one_frame_dip() -> None:
    rate = 16_000
    tone = (0.3 * np.sin(np.arange(rate) * 2 * np.pi * 220 / rate)).astype(np.float32)
    audio = tone.copy()
    audio[int(0.50 * rate) : int(0.54 * rate)] = 0.0  # a 40 ms pause
    audio[int(0.80 * rate) : int(0.82 * rate)] = 0.0  # a 20 ms stop
    assert quiet_point(audio, rate, 0.45) == pytest.approx(0.52, abs=0.011)
    assert quiet_point(audio, rate, 0.80) is None
    assert quiet_point(tone, rate, 0.5) is None


def test_a_read_from_an_earlier_cut_must_hear_the_settled_words_again_first() -> None:
    stable = StablePrefix(guard_s=0.2)
    stable.read(FIRST, 1.2)
    stable.read(SECOND, 2.2)  # settles "Hi, I'm calling" (cut at 1.2)
    # read from the start (0 words kept): it hears "Hi, I'm calling" again, then goes on
    assert stable.read([*SECOND, Word(" tooth", 2.1, 2.4)], 2.6, kept=0) == 3
    assert stable.text == "Hi, I'm calling about my crown"
    # a read from the start that heard something else settles nothing
    other = words((" Hi", 0.0, 0.3), (" I", 0.5, 0.8), (" called", 0.8, 1.2), (" so", 1.2, 2.0))
    assert stable.read(other, 3.0, kept=0) == 0
    assert stable.text == "Hi, I'm calling about my crown"
