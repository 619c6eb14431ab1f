"""The caller's answer to a callback offer: yes, no, a number, or no answer at all."""

from __future__ import annotations

import pytest

from trunkline.gateway.core.callback import (
    CallbackAnswer,
    callback_answer,
    more_digits,
    spoken_digits,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("Yes please.", ""),
        ("Yeah, that would be great.", ""),
        ("Sure.", ""),
        ("Oh yes, please do.", ""),
        ("Please call me back.", ""),
        ("I'd like you to call me back, thanks.", ""),
        ("Yes, call me at 415-555-0100.", "4155550100"),
        ("Four one five, five five five, zero one zero zero.", "4155550100"),
        ("No, call me on my cell: 650 555 0199.", "6505550199"),
        ("My number is five five five oh one two three.", "5550123"),
        ("Yes, please call me back at four one five, five five five.", "415555"),  # so far
    ],
)
def test_a_yes_or_a_number_accepts(text: str, number: str) -> None:
    answer = callback_answer(text)
    assert answer is not None
    assert answer.accepted
    assert answer.number == number


@pytest.mark.parametrize(
    "text",
    [
        "No.",
        "No thanks, I'll call again tomorrow.",
        "Nope.",
        "Not now.",
        "Don't bother.",
        "Please don't call me.",
        "I'd rather not.",
        "Never mind.",
        "Do not call me back at 415 555 0100.",  # a number, but refused outright
    ],
)
def test_a_no_declines(text: str) -> None:
    assert callback_answer(text) == CallbackAnswer(False, detail=f"declined: {text!r}")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "What time do you open on Friday?",
        "My crown fell out.",
        "Nobody answers at your front desk.",  # "no" only as a word of its own
        "My account is 44172.",  # five digits: an account, not a phone number
        "Is that a callback from a person?",
        "Okay, what time do you open on Friday?",  # a yes-word, then a question
        "No, I meant my bill, can you check it",
        "Sure, and my crown fell out last week while I was eating dinner.",
    ],
)
def test_anything_else_is_no_answer(text: str) -> None:
    assert callback_answer(text) is None


def test_numbers_are_read_digit_by_digit() -> None:
    assert spoken_digits("4155550100") == "4 1 5, 5 5 5, 0 1 0 0"
    assert spoken_digits("+14155550100") == "4 1 5, 5 5 5, 0 1 0 0"
    assert spoken_digits("5550123") == "5 5 5, 0 1 2, 3"


def test_the_rest_of_a_dictated_number_is_digits_only() -> None:
    assert more_digits("Zero one zero zero.") == "0100"
    assert more_digits("0100") == "0100"
    assert more_digits("five five five, dash, oh one two three") == "5550123"
    assert more_digits("Zero one zero zero, thanks.") is None  # more than digits: a new turn
    assert more_digits("What time do you open?") is None
    assert more_digits("") is None
