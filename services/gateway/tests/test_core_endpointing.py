from __future__ import annotations

import pytest

from trunkline.gateway.core.clauses import ClauseSplitter, speakable, split_text
from trunkline.gateway.core.endpointing import EndpointConfig, Endpointer, Phase, Signal

pytestmark = pytest.mark.unit


def run(endpointer: Endpointer, probs: list[float]) -> list[Signal]:
    return [endpointer.push(p) for p in probs]


def test_onset_needs_consecutive_voiced_frames() -> None:
    ep = Endpointer(EndpointConfig(onset_frames=3, endpoint_ms=100))
    assert run(ep, [0.9, 0.9, 0.1, 0.9, 0.9]) == [Signal.NONE] * 5
    assert ep.push(0.9) is Signal.SPEECH_START
    assert ep.phase is Phase.SPEECH


def test_pause_then_endpoint_after_configured_silence() -> None:
    ep = Endpointer(EndpointConfig(onset_frames=1, endpoint_ms=100))
    assert ep.push(0.9) is Signal.SPEECH_START
    signals = run(ep, [0.1] * 5)
    assert signals == [Signal.PAUSE, Signal.NONE, Signal.NONE, Signal.NONE, Signal.ENDPOINT]
    assert ep.phase is Phase.SILENCE


def test_speech_during_pause_resumes_and_restarts_the_silence_count() -> None:
    ep = Endpointer(EndpointConfig(onset_frames=1, endpoint_ms=60))
    run(ep, [0.9, 0.1, 0.1])
    assert ep.push(0.8) is Signal.RESUME
    assert run(ep, [0.1, 0.1, 0.1]) == [Signal.PAUSE, Signal.NONE, Signal.ENDPOINT]


def test_hysteresis_band_keeps_speech_going() -> None:
    ep = Endpointer(EndpointConfig(threshold=0.5, release_threshold=0.3, onset_frames=1))
    ep.push(0.9)
    assert run(ep, [0.4, 0.4, 0.4]) == [Signal.NONE] * 3
    assert ep.phase is Phase.SPEECH


def test_invalid_config_is_refused() -> None:
    with pytest.raises(ValueError, match="release_threshold"):
        EndpointConfig(threshold=0.3, release_threshold=0.5)
    with pytest.raises(ValueError, match="endpoint_ms"):
        EndpointConfig(endpoint_ms=10)


def test_clauses_cut_at_sentence_ends_and_long_enough_commas() -> None:
    splitter = ClauseSplitter(min_clause_words=3)
    out: list[str] = []
    deltas = ["Sure, ", "we are open ", "from nine to five, Monday", " to Friday. And", " then"]
    for delta in deltas:
        out += splitter.push(delta)
    assert out == ["Sure, we are open from nine to five,", "Monday to Friday."]
    assert splitter.flush() == ["And then"]
    assert splitter.flush() == []


def test_split_text_of_a_whole_answer() -> None:
    assert split_text("Hello! How can I help you today?") == ["Hello!", "How can I help you today?"]


def test_a_whole_answer_is_cut_like_a_streamed_one_when_its_first_sentence_is_long() -> None:
    answer = "Our office is open Monday to Friday from eight to six. Bye now."
    whole = split_text(answer, 3, first_clause_words=4)
    assert whole == ["Our office is open", "Monday to Friday from eight to six.", "Bye now."]
    streamed = ClauseSplitter(3, first_clause_words=4)
    out: list[str] = []
    for word in answer.split(" "):
        out += streamed.push(word + " ")
    assert out + streamed.flush() == whole
    # a first sentence within the limit stays whole; its comma still cuts it short
    assert split_text("Yes, we do. See you.", 3, first_clause_words=4) == [
        "Yes, we do.",
        "See you.",
    ]
    assert split_text("Hi there, how can I help you today?", 3, first_clause_words=5) == [
        "Hi there,",
        "how can I help you today?",
    ]
    assert split_text(answer, 3) == [
        "Our office is open Monday to Friday from eight to six.",
        "Bye now.",
    ]


def test_overlong_text_without_punctuation_is_cut_at_a_space() -> None:
    splitter = ClauseSplitter(max_clause_chars=20)
    out = splitter.push("one two three four five six seven")
    assert out == ["one two three four"]


def test_the_first_clause_is_cut_after_a_few_words_when_no_punctuation_comes() -> None:
    splitter = ClauseSplitter(min_clause_words=3, first_clause_words=4)
    out: list[str] = []
    for delta in ["Our", " office", " is", " open"]:
        out += splitter.push(delta)
    assert out == []  # the 4th word may go on ("opening"): not complete yet
    out += splitter.push(" Monday")
    assert out == ["Our office is open"]
    # later clauses wait for punctuation as before
    for delta in [" to", " Friday", " from", " eight", " to", " six"]:
        out += splitter.push(delta)
    assert out == ["Our office is open"]
    out += splitter.push(". Bye.")
    assert out == ["Our office is open", "Monday to Friday from eight to six."]
    assert splitter.flush() == ["Bye."]


def test_punctuation_before_the_word_limit_still_cuts_the_first_clause() -> None:
    splitter = ClauseSplitter(min_clause_words=3, first_clause_words=6)
    assert splitter.push("Sure! We open at eight, Monday to Friday ") == [
        "Sure!",
        "We open at eight,",
    ]
    splitter = ClauseSplitter(min_clause_words=3, first_clause_words=5)
    assert splitter.push("Hi there, how can I help") == ["Hi there,"]  # not "... how can I"
    with pytest.raises(ValueError, match="first_clause_words"):
        ClauseSplitter(first_clause_words=0)


def test_while_the_agent_speaks_fewer_voiced_frames_make_an_onset() -> None:
    config = EndpointConfig(onset_frames=3, barge_in_onset_frames=2)
    quiet, talking = Endpointer(config), Endpointer(config)
    assert [quiet.push(0.9) for _ in range(3)][-1] is Signal.SPEECH_START
    signals = [talking.push(0.9, agent_speaking=True) for _ in range(2)]
    assert signals == [Signal.NONE, Signal.SPEECH_START]
    with pytest.raises(ValueError, match="barge_in_onset_frames"):
        EndpointConfig(barge_in_onset_frames=0)


def test_citation_markers_are_not_spoken() -> None:
    assert speakable("[2] We take dental insurance [1, 3].") == "We take dental insurance."
    assert speakable("Open 9 to 5 [1]") == "Open 9 to 5"
    assert speakable("[1]") == ""
    assert speakable("Suite [B] on floor 2") == "Suite [B] on floor 2"  # only numbered markers


def test_a_quiet_frame_is_silence_whatever_the_probability() -> None:
    ep = Endpointer(EndpointConfig(onset_frames=1, endpoint_ms=100, quiet_dbfs=-50.0))
    assert ep.push(0.9, level_dbfs=-20.0) is Signal.SPEECH_START
    assert ep.push(0.9, level_dbfs=-25.0) is Signal.NONE
    # Silero still says speech, but the frame is 40 dB below the utterance's loudest
    assert ep.push(0.9, level_dbfs=-60.0) is Signal.PAUSE
    assert ep.push(0.9, level_dbfs=-60.0) is Signal.NONE  # a quiet frame never resumes
    assert ep.push(0.9, level_dbfs=-30.0) is Signal.RESUME
    assert run_levels(ep, [(0.9, -70.0)] * 5) == [Signal.PAUSE] + [Signal.NONE] * 3 + [
        Signal.ENDPOINT
    ]


def run_levels(endpointer: Endpointer, frames: list[tuple[float, float]]) -> list[Signal]:
    return [endpointer.push(p, level_dbfs=level) for p, level in frames]


def test_a_quiet_talker_is_not_cut_by_the_level() -> None:
    """Speech at -55 dBFS: its softer frames are below quiet_dbfs but not 30 dB below its
    loudest, so only the probability ends it."""
    ep = Endpointer(EndpointConfig(onset_frames=1, endpoint_ms=100, quiet_dbfs=-50.0))
    assert ep.push(0.9, level_dbfs=-55.0) is Signal.SPEECH_START
    assert run_levels(ep, [(0.9, -62.0), (0.8, -70.0), (0.9, -58.0)]) == [Signal.NONE] * 3
    assert ep.push(0.1, level_dbfs=-60.0) is Signal.PAUSE


def test_without_a_level_or_with_the_gate_off_the_probability_decides() -> None:
    on = Endpointer(EndpointConfig(onset_frames=1, quiet_dbfs=-50.0))
    off = Endpointer(EndpointConfig(onset_frames=1, quiet_dbfs=None))
    for ep in (on, off):
        ep.push(0.9, level_dbfs=-20.0)
    assert on.push(0.9) is Signal.NONE  # level unknown
    assert off.push(0.9, level_dbfs=-90.0) is Signal.NONE
    assert on.push(0.9, level_dbfs=-90.0) is Signal.PAUSE
    with pytest.raises(ValueError, match="quiet_dbfs"):
        EndpointConfig(quiet_dbfs=0.0)
    with pytest.raises(ValueError, match="quiet_margin_db"):
        EndpointConfig(quiet_margin_db=-1.0)


def test_a_loud_frame_counts_towards_an_onset_at_a_lower_probability() -> None:
    config = EndpointConfig(onset_frames=2, loud_dbfs=-30.0, loud_threshold=0.2)
    loud, soft, unknown = Endpointer(config), Endpointer(config), Endpointer(config)
    assert run_levels(loud, [(0.3, -15.0), (0.4, -12.0)]) == [Signal.NONE, Signal.SPEECH_START]
    # the same probabilities at -40 dBFS, or with no level, are not speech yet
    assert run_levels(soft, [(0.3, -40.0), (0.4, -40.0)]) == [Signal.NONE, Signal.NONE]
    assert [unknown.push(0.3), unknown.push(0.4)] == [Signal.NONE, Signal.NONE]
    # loud but nothing speech-like about it (Silero below loud_threshold): not speech
    assert run_levels(soft, [(0.1, -10.0)] * 3) == [Signal.NONE] * 3
    # a loud frame resumes a pause as a voiced one would
    assert run_levels(loud, [(0.1, -60.0), (0.3, -15.0)]) == [Signal.PAUSE, Signal.RESUME]
    with pytest.raises(ValueError, match="loud_dbfs"):
        EndpointConfig(loud_dbfs=0.0)
    with pytest.raises(ValueError, match="loud_threshold"):
        EndpointConfig(loud_threshold=0.6)
