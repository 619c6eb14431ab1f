"""A tool's result said in the spec's words: the first template that fits, filled in."""

from __future__ import annotations

import json

import pytest

from trunkline.gateway.core.tool_answers import ToolAnswer, tool_answer

pytestmark = pytest.mark.unit

ANSWERS = (
    ToolAnswer(
        "I found the account of {name}: the balance is {balance_usd} dollars, and the next "
        "appointment is {next_appointment}.",
        {"found": True},
    ),
    ToolAnswer(
        "I found the account of {name}: the balance is {balance_usd} dollars.", {"found": True}
    ),
    ToolAnswer("I could not find an account with that number.", {"found": False}),
)
DANA = {
    "found": True,
    "name": "Dana Whitfield",
    "balance_usd": 45.0,
    "next_appointment": "check-up and cleaning on Tuesday December 8 at 10:30 am",
}


def test_the_first_fitting_answer_is_filled_in() -> None:
    assert tool_answer(ANSWERS, json.dumps(DANA)) == (
        "I found the account of Dana Whitfield: the balance is 45 dollars, and the next "
        "appointment is check-up and cleaning on Tuesday December 8 at 10:30 am."
    )


def test_a_missing_field_moves_on_to_the_next_answer() -> None:
    priya = {
        "found": True,
        "name": "Priya Natarajan",
        "balance_usd": 299.5,
        "next_appointment": None,
    }
    assert tool_answer(ANSWERS, json.dumps(priya)) == (
        "I found the account of Priya Natarajan: the balance is 299.5 dollars."
    )


def test_when_must_match_and_nothing_fits_means_none() -> None:
    assert tool_answer(ANSWERS, '{"found": false, "message": "no account"}') == (
        "I could not find an account with that number."
    )
    assert tool_answer(ANSWERS, '{"error": "failed", "message": "HTTP 503"}') is None
    assert tool_answer(ANSWERS, "not json") is None
    assert tool_answer(ANSWERS, "[1, 2]") is None
    assert tool_answer((), json.dumps(DANA)) is None
