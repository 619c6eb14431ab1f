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
        ("Who won the world cup in 1966, 1966, 1966", "Who won the world cup in 1966"),
        ("Who won the world cup in 1966, 1966, 1966.", "Who won the world cup in 1966."),
        (
            "Who won the football world cup in 1966? Who won the football world cup in 1966?",
            "Who won the football world cup in 1966?",
        ),
        # the loop's next copy begun and stopped by the token cap after a word or two
        ("Are you open on Saturday morning? Are", "Are you open on Saturday morning?"),
        (
            "Hi, this is Maria Lopez. My account number is 441729. Hi, this",
            "Hi, this is Maria Lopez. My account number is 441729.",
        ),
        (
            "I can smell gas in my kitchen, what should I do? What should",
            "I can smell gas in my kitchen, what should I do?",
        ),
        ("Is a filling really $150, $ $150, $", "Is a filling really $150"),
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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("It was 1966, 1966, 1966, 1966 and England won", "It was 1966 and England won"),
        (  # a sentence written twice before the rest: the copy that leads on is kept
            "What are your hours? What are your hours? What are your hours on Saturday?",
            "What are your hours on Saturday?",
        ),
        ("I want to pay. I want to pay. I want to pay my bill", "I want to pay my bill"),
        ("Thank you. Thank you. Thank you. Bye.", "Thank you. Bye."),
        ("no no no I said Tuesday", "no I said Tuesday"),
    ],
)
def test_loops_in_the_middle_are_kept_once(text: str, expected: str) -> None:
    assert cut_repeats(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "my PIN is 1 1 1",  # digits said one by one are a number
        "account 4 4 4 1 2 please",
        "Hello. Hello. How are you?",  # a short phrase twice is speech
        "Is it open? Then I",  # the words after the sentence do not start one again
        "Yes. Yes",
    ],
)
def test_numbers_and_short_doubles_are_not_loops(text: str) -> None:
    assert cut_repeats(text) == text
