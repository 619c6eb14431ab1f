import numpy as np
import pytest

from trunkline.tts.core import ClauseSplitter, chunk_samples, split_clauses

pytestmark = pytest.mark.unit


def test_sentences_and_long_comma_parts_become_clauses() -> None:
    text = "Hello there. We open at nine on weekdays, and close at five! Yes, sure."
    assert split_clauses(text) == [
        "Hello there.",
        "We open at nine on weekdays,",
        "and close at five!",
        "Yes, sure.",
    ]


def test_decimals_and_abbreviations_do_not_end_a_clause() -> None:
    assert split_clauses("Dr. Smith charges 3.5 dollars.") == ["Dr. Smith charges 3.5 dollars."]


def test_a_clause_without_punctuation_is_cut_at_a_word_boundary() -> None:
    clauses = split_clauses("word " * 60, max_chars=40)
    assert all(len(c) <= 45 for c in clauses)
    assert " ".join(clauses).split() == ["word"] * 60


def test_streamed_text_yields_a_clause_once_its_end_is_certain() -> None:
    splitter = ClauseSplitter()
    assert splitter.feed("Thanks for call") == []
    assert splitter.feed("ing.") == []  # "ing.5" would still be possible
    assert splitter.feed(" How can") == ["Thanks for calling."]
    assert splitter.flush() == ["How can"]


def test_chunks_cover_the_samples_in_order() -> None:
    samples = np.arange(1000, dtype=np.int16)
    chunks = list(chunk_samples(samples, 16_000, 0.02))
    assert [c.size for c in chunks] == [320, 320, 320, 40]
    assert np.array_equal(np.concatenate(chunks), samples)
