import pytest

from trunkline.stt.core import cut_repeats

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello there. Hello there. Hello", "Hello there."),
        ("Yes yes yes yes yes yes", "Yes"),
        ("Yes? Yes? Yes? Yes? Yes", "Yes?"),
        ("thank you thank you", "thank you"),
        (
            "I would like to check my balance please. I would like",
            "I would like to check my balance please.",
        ),
        (
            "We open at 9 and close at 5. We open at 9 and close at 5.",
            "We open at 9 and close at 5.",
        ),
        (  # the token cap cut the last copy inside a word (heard in the demo)
            "How much does teeth whitening cost? How much does teeth whit",
            "How much does teeth whitening cost?",
        ),
    ],
)
def test_loops_to_the_end_are_cut_to_one_copy(text: str, expected: str) -> None:
    assert cut_repeats(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "bye bye",
        "A B. A B. C",
        "no",
        "We are open. Open.",
        "one two three one two",
        "one two three one tw",
        "",
    ],
)
def test_speech_that_only_looks_repetitive_stays(text: str) -> None:
    assert cut_repeats(text) == text
