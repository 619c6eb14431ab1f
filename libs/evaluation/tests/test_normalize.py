import pytest

from trunkline.evaluation.normalize import phrase_in, wer_words
from trunkline.evaluation.wer import corpus_wer, wer

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "said",
    ["9 am", "nine a.m.", "9:00 AM", "9am", "nine o'clock", "9:00", "nine in the morning"],
)
def test_nine_am_is_said_many_ways(said: str) -> None:
    assert phrase_in("9 am", f"We open at {said} on Saturday.")


@pytest.mark.parametrize("said", ["9 pm", "nine in the evening", "21:00", "10 am", "19:00"])
def test_other_times_are_not_nine_am(said: str) -> None:
    assert not phrase_in("9 am", f"We open at {said} on Saturday.")


def test_a_bare_hour_is_not_taken_for_a_time_but_an_expected_hour_is_met_by_one() -> None:
    assert not phrase_in("9 am", "from 9 to 1")  # no clock time was said
    assert phrase_in("9", "from 9 am to 1 pm")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("It costs $299.00", ["it", "costs", "299", "dollars"]),
        ("one hundred and fifty dollars", ["150", "dollars"]),
        ("ninety-five", ["95"]),
        ("Account four four one, seven two nine", ["account", "441729"]),
        ("441-729", ["441729"]),
        ("1-800-555-0142", ["18005550142"]),
        ("December eighth at 10:30 am", ["december", "8", "at", "10:30am"]),
        ("From 8 in the morning until 6 in the evening", ["from", "8:00am", "to", "6:00pm"]),
        ("we're closed Sundays", ["we", "are", "closed", "sunday"]),
        ("twenty-four cents per kilowatt-hour", ["24", "cents", "per", "kwh"]),
        ("noon", ["12:00pm"]),
        ("1,000", ["1000"]),
        ("I am here", ["i", "am", "here"]),
    ],
)
def test_words_are_normalised(text: str, words: list[str]) -> None:
    assert wer_words(text) == words


def test_phrases_allow_a_few_words_between_and_ignore_stop_words() -> None:
    assert phrase_in("closed on Sunday", "We are closed on Sundays.")
    assert phrase_in("120 Main Street", "We are at 120 Main St. in Springfield")
    assert phrase_in("free parking", "There is free and easy parking behind us")
    assert not phrase_in("open on sunday", "we are open monday to saturday, closed on sunday")


def test_near_misses_do_not_match() -> None:
    assert not phrase_in("Monday", "We are open on Tuesday.")
    assert not phrase_in("fee to join", "There is a fee to leave.")
    assert not phrase_in("24 cents", "It is 22 cents per kilowatt hour.")
    assert not phrase_in("75 dollars", "That costs 7 dollars and 5 cents.")


def test_wer_counts_edits_on_normalised_words() -> None:
    assert wer("When are you open on Saturday?", "when are you open on saturday").edits == 0
    count = wer("When are you open on Saturday?", "When are you open on set or day")
    assert (count.edits, count.words) == (3, 6)  # saturday -> set, + or, + day
    assert wer("It is nine a.m.", "it is 9 am").edits == 0
    assert corpus_wer([wer("a b c d", "a b c d"), wer("a b", "a x")]) == pytest.approx(1 / 6)
    assert corpus_wer([]) is None
