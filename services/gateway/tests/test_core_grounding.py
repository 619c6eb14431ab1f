"""The grounding guard: facts normalised alike on both sides; unsupported ones are named."""

from __future__ import annotations

import pytest

from trunkline.gateway.core.grounding import Support, facts_of

pytestmark = pytest.mark.unit

PROMPT = (
    "You are Ava, the receptionist of Acme Dental, 120 Main Street, Springfield. "
    "Opening hours: Monday to Friday 8 am to 6 pm, Saturday 9 am to 1 pm, closed on Sunday. "
    "Services and prices: check-up and cleaning 95 dollars, filling from 150 dollars."
)
BLOCK = (
    "[1] ## Emergencies outside opening hours\nFor a dental emergency, call our main number "
    "and press 9: the on-call dentist calls you back within thirty minutes."
)


@pytest.fixture
def support() -> Support:
    return Support([PROMPT, BLOCK])


@pytest.mark.parametrize(
    "clause",
    [
        "On Saturday we are open from 9 am to 1 pm.",
        "We're open from nine to one on Saturdays.",  # spelled out, plural weekday
        "We are open Tuesday from 8 to 6.",  # Tuesday inside "Monday to Friday"
        "We're open weekdays until 6 pm.",
        "A check-up costs 95 dollars.",
        "A check-up costs $95.",
        "The dentist calls you back within 30 minutes.",  # "thirty" in the block
        "Thank you for calling Acme Dental, this is Ava.",
        "One moment, please.",  # "one" as a pronoun is no number
        "Press 9 for an emergency.",
        "We open at 9:00 on Saturday.",  # a clock time without am/pm, either reading
        "Sure, I can help with that.",  # nothing checkable
    ],
)
def test_supported_clauses_pass(support: Support, clause: str) -> None:
    verdict = support.check(clause)
    assert verdict.passed, verdict.unsupported


@pytest.mark.parametrize(
    ("clause", "unsupported"),
    [
        ("Saturday is available until 12:30 PM.", {"time:12:30"}),
        ("On Saturday we close at 2 pm.", {"time:14:00"}),
        ("In 1967 the championship was held in Mexico City.", {"number:1967", "name:mexico city"}),
        ("England won the World Cup in nineteen sixty-six.", {"number:1966", "name:world cup"}),
        ("A check-up costs $85.", {"number:85"}),
        ("That costs twenty five dollars.", {"number:25"}),
        ("Our dentist Dr. Smith will call you.", {"name:dr smith"}),
        ("You can come in on the 3rd of May.", {"number:3", "month:may"}),
        ("We also have a branch in Shelbyville.", {"name:shelbyville"}),
    ],
)
def test_unsupported_facts_are_named(support: Support, clause: str, unsupported: set[str]) -> None:
    verdict = support.check(clause)
    assert not verdict.passed
    assert set(verdict.unsupported) == unsupported


def test_normalisation_agrees_on_both_sides() -> None:
    assert "time:13:00" in facts_of("until 1 pm")
    assert "time:13:00" in facts_of("until one p.m.")
    assert "time:09:30" in facts_of("from 9:30 am")
    assert "number:150" in facts_of("one hundred and fifty dollars")
    assert "number:45.5" in facts_of("45 dollars and 50 cents")
    assert "number:1200" in facts_of("1,200 dollars")
    assert facts_of("monday to friday", support=True) >= {
        f"weekday:{d}" for d in ("monday", "tuesday", "wednesday", "thursday", "friday")
    }
    assert "weekday:tuesday" not in facts_of("monday to friday")  # a clause states no range
    wrapped = facts_of("Saturday through Tuesday", support=True)
    assert {f for f in wrapped if f.startswith("weekday:")} == {
        "weekday:saturday",
        "weekday:sunday",
        "weekday:monday",
        "weekday:tuesday",
    }


def test_iso_dates_in_live_records_support_month_day_and_weekday() -> None:
    support = Support(['{"start": "2026-12-07T10:00:00", "service": "checkup"}'])
    assert support.check("Your check-up is on Monday, December 7th at 10 am.").passed
    verdict = support.check("Your check-up is on Tuesday, December 8th.")
    assert set(verdict.unsupported) == {"weekday:tuesday", "number:8"}


def test_the_callers_words_are_not_support() -> None:
    """Only the turn's context, tools and prompt count: a caller's guess stays unsupported."""
    support = Support([PROMPT])
    assert not support.check("Yes, we are open until 8 pm on Saturday.").passed


def test_added_tool_results_become_support(support: Support) -> None:
    turn = support.copy()
    turn.add('{"account_id": "483920", "balance_usd": 45.5}')
    assert turn.check("Account 483920 has a balance of 45 dollars and 50 cents.").passed
    assert not support.check("Account 483920 has a balance of 45.50 dollars.").passed


def test_block_item_marks_and_possessives() -> None:
    """The block's "[2]" states no number 2; "Acme Dental's" is the supported "Acme Dental"."""
    support = Support(["[1] Acme Dental is open on Saturday.\n[2] Parking is free."])
    assert set(support.check("The account number is 2 digits long.").unsupported) == {"number:2"}
    assert support.check("You can call Acme Dental's front desk.").passed
