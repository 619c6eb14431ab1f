"""Spelled-out numbers: compounds, scales, digit strings read one by one, years."""

from __future__ import annotations

import pytest

from trunkline.text import MONTH_NUMBERS, read_number, spelled_numbers

pytestmark = pytest.mark.unit


def values(text: str, *, years: bool = False) -> list[int]:
    return [run.value for run in spelled_numbers(text.split(), years=years)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("twenty five", [25]),
        ("twenty-five", [25]),
        ("one hundred and five", [105]),
        ("one hundred twenty", [120]),
        ("two thousand and six", [2006]),
        ("two thousand one hundred", [2100]),
        ("five hundred thousand", [500_000]),
        ("nine", [9]),
        ("zero", [0]),
    ],
)
def test_compounds_are_one_number(text: str, expected: list[int]) -> None:
    assert values(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("four five six", [4, 5, 6]),  # an account number read digit by digit
        ("five twenty", [5, 20]),
        ("twenty twelve", [20, 12]),
        ("twenty thirty", [20, 30]),
        ("nineteen sixty six", [19, 66]),
        ("eleven twelve", [11, 12]),
    ],
)
def test_a_word_that_cannot_continue_a_number_starts_the_next(
    text: str, expected: list[int]
) -> None:
    assert values(text) == expected


def test_years_said_in_two_halves_only_when_asked() -> None:
    assert values("the final was in nineteen sixty six", years=True) == [1966]
    assert values("nineteen sixty six", years=False) == [19, 66]
    assert values("nineteen hundred", years=True) == [1900]


def test_and_joins_only_after_a_scale() -> None:
    assert values("five and six") == [5, 6]
    assert values("a hundred and") == []  # a scale never starts a number; "a" is not one
    assert values("one hundred and then") == [100]


def test_read_number_reports_the_words_it_used() -> None:
    words = ["open", "from", "nine", "thirty", "to", "five"]
    assert read_number(words, 2) == (9, 1)
    assert read_number(words, 3) == (30, 1)
    assert read_number(words, 0) is None


def test_months_are_numbered() -> None:
    assert MONTH_NUMBERS["january"] == 1
    assert MONTH_NUMBERS["december"] == 12
