import pytest

from trunkline.stt.core.wer import WordErrors, missed_terms, normalize, word_errors

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("written", "words"),
    [
        ("Is a filling really $150?", ["is", "a", "filling", "really", "150", "dollars"]),
        ("one hundred and fifty dollars", ["150", "dollars"]),
        ("ten thirty", ["1030"]),
        ("10:30 AM", ["1030", "am"]),
        ("three p.m. on Friday", ["3", "pm", "on", "friday"]),
        ("3pm", ["3", "pm"]),
        ("4 4 1 7 2 9", ["441729"]),
        ("441-729", ["441729"]),
        ("It costs 1,200 pounds", ["it", "costs", "1200", "pounds"]),
        ("forty-five minutes", ["45", "minutes"]),
        ("bread and butter", ["bread", "and", "butter"]),
        ("one and two", ["1", "and", "2"]),
        ("Your call centre, Dr. O'Connor", ["your", "call", "center", "doctor", "o'connor"]),
    ],
)
def test_ways_of_writing_the_same_words_compare_equal(written: str, words: list[str]) -> None:
    assert normalize(written) == words


def test_word_errors_count_substitutions_deletions_and_insertions() -> None:
    errors = word_errors(
        "What are your opening hours on Saturday?", "what are you opening hours on set or day"
    )
    assert (errors.substitutions, errors.deletions, errors.insertions) == (2, 0, 2)
    assert errors.reference_words == 7
    assert errors.rate == pytest.approx(4 / 7)
    assert word_errors("Is it $95?", "is it ninety five dollars").errors == 0
    assert word_errors("hello there", "").deletions == 2


def test_errors_add_up_over_utterances() -> None:
    total = word_errors("a b c", "a b") + word_errors("d e", "d e f")
    assert total == WordErrors(0, 1, 1, 5)
    assert total.rate == pytest.approx(0.4)
    assert WordErrors(0, 0, 0, 0).rate == 0.0
    assert WordErrors(0, 0, 1, 0).rate == 1.0


def test_missed_terms_count_the_vocabulary_said_and_lost() -> None:
    terms = ["Saturday", "Acme Dental", "teeth whitening"]
    said, missed = missed_terms(
        "Does Acme Dental do teeth whitening on Saturday?",
        "does acne dental do teeth whitening on saturday",
        terms,
    )
    assert (said, missed) == (3, 1)
