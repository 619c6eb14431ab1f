import pytest

from trunkline.stt.core import Vocabulary, prompt_text, vocabulary_of

pytestmark = pytest.mark.unit


def words(text: str) -> int:
    return len(text.split())


def test_phrases_are_cleaned_and_deduplicated_in_order() -> None:
    vocab = vocabulary_of(["  Acme  Dental ", "", "saturday", "Saturday", "teeth whitening"], 2.5)
    assert vocab == Vocabulary(("Acme Dental", "saturday", "teeth whitening"), 2.5)
    assert vocab
    assert not vocabulary_of([])


@pytest.mark.parametrize(
    ("phrases", "boost", "message"),
    [
        (["x" * 101], 0.0, "is 101 characters; at most 100"),
        ([f"w{i}" for i in range(201)], 0.0, "201 phrase_hints; at most 200"),
        (["a"], 100.5, "phrase_boost 100.5 is outside 0 .. 100"),
        (["a"], -1.0, "phrase_boost -1 is outside"),
    ],
)
def test_bad_vocabularies_say_what_is_wrong(phrases: list[str], boost: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        vocabulary_of(phrases, boost)


def test_the_prompt_keeps_whole_phrases_first_ones_first_within_the_budget() -> None:
    vocab = Vocabulary(("Acme Dental", "Saturday", "teeth whitening", "Main Street"))
    assert prompt_text(vocab, words, 100) == "Acme Dental, Saturday, teeth whitening, Main Street."
    # "Acme Dental, Saturday, teeth whitening." is 5 words; the next phrase would make 7
    assert prompt_text(vocab, words, 6) == "Acme Dental, Saturday, teeth whitening."
    assert prompt_text(vocab, words, 1) == ""  # the first phrase alone does not fit
    assert prompt_text(vocab, words, 0) == ""
    assert prompt_text(Vocabulary(), words, 100) == ""


def test_the_words_after_the_vocabulary_count_against_the_budget() -> None:
    vocab = Vocabulary(("Acme Dental", "Saturday", "teeth whitening"))
    after = "How can I help?"
    assert (
        prompt_text(vocab, words, 100, after)
        == "Acme Dental, Saturday, teeth whitening. How can I help?"
    )
    assert prompt_text(vocab, words, 7, after) == "Acme Dental, Saturday. How can I help?"
    assert prompt_text(vocab, words, 5, after) == ""
